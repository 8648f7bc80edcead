//! Streaming puts to S3 with memory bounded node-wide.
//!
//! S3 takes a multipart upload in parts of at least 5 MiB, so a part must be whole before it is
//! sent; held in memory while a client sends it, 20 uploads at once would hold 100 MiB or more,
//! at the pace of the slowest clients. Here the part being received goes to a spool file on
//! local disk instead (created and unlinked at once, so nothing outlives the process), and a
//! complete part is read back into memory only to be sent, under a permit of a node-wide budget
//! (`MEMORY_PARTS`): memory for parts is bounded by the budget, whatever the number of uploads,
//! and a slow client holds disk, never a permit. A body that ends within its first part is
//! stored with one PUT.

use super::{BlobError, store_err};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Bytes per part (S3's smallest part but the last).
pub(super) const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts in memory at once on this node, across every upload (20 MiB).
pub(super) const MEMORY_PARTS: usize = 4;
/// Parts one upload sends at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Where parts wait on disk, and the node's budget of parts in memory: `MEMORY_PARTS` permits,
/// and the part buffers themselves, allocated once and reused (5 MiB buffers allocated and freed
/// on many threads stay resident in the allocator's per-thread arenas: measured, BENCHMARKS.md).
pub(super) struct Spool {
    pub(super) dir: PathBuf,
    pub(super) budget: Arc<Semaphore>,
    pub(super) buffers: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Spool {
    pub(super) fn new(dir: PathBuf) -> Spool {
        Spool { dir, budget: Arc::new(Semaphore::new(MEMORY_PARTS)), buffers: Default::default() }
    }
}

/// A part buffer back to the pool once nothing else holds its bytes.
fn give_back(pool: &std::sync::Mutex<Vec<Vec<u8>>>, bytes: bytes::Bytes) {
    if let Ok(buf) = bytes.try_into_mut() {
        let mut buf = Vec::from(buf);
        if buf.capacity() >= PART_BYTES {
            buf.clear();
            pool.lock().expect("not poisoned").push(buf);
        }
    }
}

fn io_err(what: &str, e: std::io::Error) -> BlobError {
    BlobError::Store(format!("{what}: {e}"))
}

/// One streaming put through the spool.
pub(super) struct Spooled<'a> {
    store: &'a Arc<dyn ObjectStore>,
    spool: &'a Spool,
    path: Path,
    /// The part being received, and its length.
    part: Option<tokio::fs::File>,
    part_len: usize,
    /// Started with the first whole part; aborted on drop unless finished.
    upload: Option<Box<dyn MultipartUpload>>,
    sending: JoinSet<Result<(), object_store::Error>>,
}

impl<'a> Spooled<'a> {
    pub(super) fn new(store: &'a Arc<dyn ObjectStore>, spool: &'a Spool, path: Path) -> Spooled<'a> {
        Spooled { store, spool, path, part: None, part_len: 0, upload: None, sending: JoinSet::new() }
    }

    pub(super) async fn write(&mut self, mut bytes: &[u8]) -> Result<(), BlobError> {
        while !bytes.is_empty() {
            if self.part.is_none() {
                self.part = Some(new_file(&self.spool.dir).await?);
                self.part_len = 0;
            }
            let take = (PART_BYTES - self.part_len).min(bytes.len());
            let file = self.part.as_mut().expect("opened above");
            file.write_all(&bytes[..take]).await.map_err(|e| io_err("spooling a part", e))?;
            self.part_len += take;
            bytes = &bytes[take..];
            if self.part_len == PART_BYTES {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// The part received so far, read back into a pooled buffer (the caller holds a permit),
    /// on a blocking thread.
    async fn take_part(&mut self) -> Result<bytes::Bytes, BlobError> {
        let Some(mut file) = self.part.take() else { return Ok(bytes::Bytes::new()) };
        file.flush().await.map_err(|e| io_err("spooling a part", e))?;
        let (file, len) = (file.into_std().await, std::mem::take(&mut self.part_len));
        let buf = self.spool.buffers.lock().expect("not poisoned").pop();
        let data = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            use std::io::{Read, Seek};
            let mut file = file;
            file.rewind()?;
            let mut data = buf.unwrap_or_else(|| Vec::with_capacity(PART_BYTES));
            file.take(len as u64).read_to_end(&mut data)?;
            Ok(data)
        })
        .await
        .map_err(join_err)?
        .map_err(|e| io_err("reading a spooled part", e))?;
        Ok(data.into())
    }

    async fn send_part(&mut self) -> Result<(), BlobError> {
        while self.sending.len() >= PARTS_IN_FLIGHT {
            self.sending.join_next().await.expect("not empty").map_err(join_err)?.map_err(store_err)?;
        }
        let permit = self.spool.budget.clone().acquire_owned().await.expect("the budget is never closed");
        let data = self.take_part().await?;
        if self.upload.is_none() {
            self.upload = Some(self.store.put_multipart(&self.path).await.map_err(store_err)?);
        }
        let sent = self.upload.as_mut().expect("started above").put_part(data.clone().into());
        let pool = self.spool.buffers.clone();
        self.sending.spawn(async move {
            let r = sent.await;
            give_back(&pool, data);
            drop(permit);
            r
        });
        Ok(())
    }

    /// Stores what was written: one PUT when it fits in a part, else the last part and the
    /// completion. A failure aborts the upload.
    pub(super) async fn finish(mut self) -> Result<(), BlobError> {
        if self.upload.is_none() {
            let _permit = self.spool.budget.acquire().await.expect("the budget is never closed");
            let data = self.take_part().await?;
            let stored = self.store.put(&self.path, data.clone().into()).await.map(drop).map_err(store_err);
            give_back(&self.spool.buffers, data);
            return stored;
        }
        let done: Result<(), BlobError> = async {
            if self.part_len > 0 {
                self.send_part().await?;
            }
            while let Some(sent) = self.sending.join_next().await {
                sent.map_err(join_err)?.map_err(store_err)?;
            }
            self.upload.as_mut().expect("started").complete().await.map(drop).map_err(store_err)
        }
        .await;
        match done {
            Ok(()) => {
                self.upload = None;
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    pub(super) async fn abort(mut self) {
        self.sending.shutdown().await;
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(path = %self.path, err = %e, "aborting a refused upload failed");
        }
    }
}

/// A spool file in `dir` with no name: it goes away with its handle. (A free function: the put's
/// future holds no `&Spooled` across an await, so it stays `Send`.)
async fn new_file(dir: &std::path::Path) -> Result<tokio::fs::File, BlobError> {
    let name = dir.join(format!("part-{:032x}", rand::random::<u128>()));
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&name)
        .await
        .map_err(|e| io_err(&format!("creating a spool file in {}", dir.display()), e))?;
    tokio::fs::remove_file(&name).await.map_err(|e| io_err("unlinking a spool file", e))?;
    Ok(file)
}

fn join_err(e: tokio::task::JoinError) -> BlobError {
    BlobError::Store(format!("a part's task failed: {e}"))
}

impl Drop for Spooled<'_> {
    /// Dropped mid-body (the request was cut off): the parts sent are aborted.
    fn drop(&mut self) {
        self.sending.abort_all();
        if let Some(mut upload) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let path = self.path.clone();
            rt.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(%path, err = %e, "aborting an abandoned upload failed");
                }
            });
        }
    }
}
