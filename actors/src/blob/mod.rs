//! Blob storage: the bytes of attachments, thumbnails and voice notes, behind `object_store`.
//!
//! Two backends: the local file system under a directory (one node; the default) and any
//! S3-compatible store (what a cluster needs, since every node must see every file). Keys are
//! opaque strings chosen by the caller (`u/<upload id>`); on S3 they live under a prefix.
//!
//! Writes stream: `put_stream` sends the body on as multipart parts while it arrives, so an
//! upload costs a few part buffers, never its size. On S3, whose parts are 5 MiB, the part being
//! received waits on local disk, memory for parts is a node-wide budget, and a body that fits in
//! one part is stored with one request (`spool`). A body over its cap, a body that fails (the
//! client went away) or a dropped future aborts the multipart upload: nothing stays stored.
//!
//! With an encryption key, objects are sealed at rest in chunks (`crypt`): a range read fetches
//! and decrypts only the chunks it needs, and sizes are the plaintext's. Objects stored before
//! the key was set (no header) are still served as they are.
//!
//! This module never knows what a key means (that is the uploads store's business) and never
//! holds a whole object in memory, except `put` of small things (thumbnails).

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

mod crypt;
mod spool;

/// Where blobs live and how they are sealed.
#[derive(Clone, Debug)]
pub struct BlobConfig {
    pub kind: BlobKind,
    /// Encrypts stored objects at rest (the key of `--encryption-key-file`).
    pub cipher: Option<crate::store::Cipher>,
}

/// The backend.
#[derive(Clone)]
pub enum BlobKind {
    /// Files under `dir` (created when absent). One node only.
    Local { dir: PathBuf },
    /// An S3-compatible store. `endpoint` None means AWS itself (by `region`); a self-hosted
    /// store (Garage, MinIO) is named by its URL and addressed path-style.
    S3 {
        endpoint: Option<String>,
        bucket: String,
        region: String,
        access_key: String,
        secret_key: String,
        allow_http: bool,
        /// Prepended to every key (`confab/`), so one bucket can hold other things too.
        prefix: String,
        /// Local directory where parts wait until whole (`spool`); created when absent.
        spool_dir: PathBuf,
    },
}

impl std::fmt::Debug for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobKind::Local { dir } => write!(f, "Local({})", dir.display()),
            BlobKind::S3 { endpoint, bucket, region, prefix, spool_dir, .. } => write!(
                f,
                "S3(endpoint {}, bucket {bucket}, region {region}, prefix {prefix:?}, spool {})",
                endpoint.as_deref().unwrap_or("aws"),
                spool_dir.display()
            ),
        }
    }
}

/// What a blob operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body was longer than the cap; nothing was kept.
    #[error("the body is larger than allowed")]
    TooLarge,
    /// Reading the body failed (the client went away); nothing was kept.
    #[error("reading the body failed: {0}")]
    Body(String),
    #[error("no such blob")]
    NotFound,
    /// The store failed, or a stored object is damaged.
    #[error("blob store: {0}")]
    Store(String),
}

fn store_err(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        e => BlobError::Store(e.to_string()),
    }
}

/// Bytes handed to the local file system per part: it takes any size, so small ones held in
/// memory (S3's are spooled to disk: `spool`).
const LOCAL_PART_BYTES: usize = 256 * 1024;
/// Parts being written at once per upload, beyond the one being filled.
const PARTS_IN_FLIGHT: usize = 2;

/// A cheap-to-clone handle on the blob store.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// Prepended to keys: empty, or ends with '/'.
    prefix: String,
    shared: bool,
    /// S3 only: parts wait on disk until whole.
    spool: Option<spool::Spool>,
    cipher: Option<crate::store::Cipher>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.inner.store)
    }
}

impl BlobStore {
    /// Opens the store: creates the local directory, or checks the S3 settings (the bucket is
    /// not contacted: a store that is down shows on the first request).
    pub async fn open(cfg: BlobConfig) -> Result<BlobStore, BlobError> {
        let inner = match cfg.kind {
            BlobKind::Local { dir } => {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|e| BlobError::Store(format!("creating {}: {e}", dir.display())))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(store_err)?
                    .with_automatic_cleanup(true);
                Inner { store: Arc::new(fs), prefix: String::new(), shared: false, spool: None, cipher: cfg.cipher }
            }
            BlobKind::S3 { endpoint, bucket, region, access_key, secret_key, allow_http, prefix, spool_dir } => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&bucket)
                    .with_region(&region)
                    .with_access_key_id(&access_key)
                    .with_secret_access_key(&secret_key)
                    .with_allow_http(allow_http);
                if let Some(url) = endpoint {
                    // Self-hosted stores answer path-style (http://host/bucket/key).
                    b = b.with_endpoint(url).with_virtual_hosted_style_request(false);
                }
                let s3 = b.build().map_err(|e| BlobError::Store(format!("S3 settings: {e}")))?;
                tokio::fs::create_dir_all(&spool_dir)
                    .await
                    .map_err(|e| BlobError::Store(format!("creating {}: {e}", spool_dir.display())))?;
                let prefix = prefix.trim_matches('/');
                Inner {
                    store: Arc::new(s3),
                    prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
                    shared: true,
                    spool: Some(spool::Spool::new(spool_dir)),
                    cipher: cfg.cipher,
                }
            }
        };
        Ok(BlobStore { inner: Arc::new(inner) })
    }

    /// True when every node of a cluster sees the same objects (S3); false for the local file
    /// system, which a cluster refuses.
    pub fn shared(&self) -> bool {
        self.inner.shared
    }

    fn path(&self, key: &str) -> Result<Path, BlobError> {
        if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
            return Err(BlobError::Store(format!("invalid blob key {key:?}")));
        }
        Path::parse(format!("{}{key}", self.inner.prefix))
            .map_err(|e| BlobError::Store(format!("invalid blob key {key:?}: {e}")))
    }

    /// Streams `body` to `key`; more than `max` bytes → `TooLarge` and nothing stays stored; a
    /// body error (client cut off) → `Body` and nothing stays stored. Dropping the future also
    /// aborts the upload. Memory: a few part buffers. Answers the bytes stored.
    pub async fn put_stream<S>(&self, key: &str, mut body: S, max: u64) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let path = self.path(key)?;
        let mut out = match &self.inner.spool {
            Some(spool) => Sink::Spooled(spool::Spooled::new(&self.inner.store, spool, path)),
            None => Sink::Memory(Upload { store: self, path, multipart: AbortOnDrop(None) }),
        };
        let mut sealer = match &self.inner.cipher {
            Some(c) => {
                let (sealer, header) = crypt::Sealer::new(c, key);
                out.write(&header).await?;
                Some(sealer)
            }
            None => None,
        };
        let mut total = 0u64;
        let streamed: Result<(), BlobError> = async {
            let mut sealed = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                total += chunk.len() as u64;
                if total > max {
                    return Err(BlobError::TooLarge);
                }
                match &mut sealer {
                    Some(sealer) => {
                        sealer.push(&chunk, |c| sealed.push(c));
                        for c in sealed.drain(..) {
                            out.write(&c).await?;
                        }
                    }
                    None => out.write(&chunk).await?,
                }
            }
            if let Some(sealer) = sealer {
                out.write(&sealer.finish()).await?;
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => out.finish().await.map(|()| total),
            Err(e) => {
                out.abort(key).await;
                Err(e)
            }
        }
    }

    /// Stores small bytes in one request (thumbnails).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path(key)?;
        let bytes = match &self.inner.cipher {
            Some(c) => crypt::seal_all(c, key, &bytes),
            None => bytes,
        };
        self.inner.store.put(&path, PutPayload::from_bytes(bytes)).await.map_err(store_err)?;
        Ok(())
    }

    /// The object's path, its stored size, and how it is sealed (None: stored in clear).
    async fn stored(&self, key: &str) -> Result<(Path, u64, Option<crypt::Sealed>), BlobError> {
        let path = self.path(key)?;
        let stored = self.inner.store.head(&path).await.map_err(store_err)?.size;
        let Some(cipher) = &self.inner.cipher else { return Ok((path, stored, None)) };
        if stored < crypt::HEADER {
            return Ok((path, stored, None));
        }
        let header = self.inner.store.get_range(&path, 0..crypt::HEADER).await.map_err(store_err)?;
        let sealed = crypt::Sealed::parse(cipher, key, &header, stored)?;
        Ok((path, stored, sealed))
    }

    /// The object's size in bytes (of plaintext, when it is sealed).
    pub async fn size(&self, key: &str) -> Result<u64, BlobError> {
        let (_, stored, sealed) = self.stored(key).await?;
        Ok(sealed.map_or(stored, |s| s.size))
    }

    /// Bytes `range` (None: all) of `key`, as a stream, and the object's size. The range is
    /// clipped to the object (a range that starts at or past the end gives no bytes): the caller
    /// compares it with the size to answer 416.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<(BoxStream<'static, Result<Bytes, BlobError>>, u64), BlobError> {
        let (path, stored, sealed) = self.stored(key).await?;
        let size = sealed.as_ref().map_or(stored, |s| s.size);
        let want = clip(range, size);
        if want.is_empty() {
            return Ok((futures::stream::empty().boxed(), size));
        }
        let fetch = sealed.as_ref().map_or(want.clone(), |s| s.stored_range(&want).0);
        let got =
            self.inner.store.get_opts(&path, GetOptions::new().with_range(Some(fetch))).await.map_err(store_err)?;
        let bytes = got.into_stream().map(|r| r.map_err(store_err)).boxed();
        let plain = match sealed {
            Some(s) => s.open_stream(bytes, want),
            None => bytes,
        };
        Ok((plain, size))
    }

    /// Deletes `key`; an absent key is fine.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(e)),
        }
    }
}

/// `range` clipped to an object of `size` bytes.
fn clip(range: Option<Range<u64>>, size: u64) -> Range<u64> {
    match range {
        None => 0..size,
        Some(r) => r.start.min(size)..r.end.min(size).max(r.start.min(size)),
    }
}

/// Where a streaming put's stored bytes go: parts in memory (the local file system) or spooled
/// to disk (S3).
enum Sink<'a> {
    Memory(Upload<'a>),
    Spooled(spool::Spooled<'a>),
}

impl Sink<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        match self {
            Sink::Memory(u) => u.write(bytes).await,
            Sink::Spooled(s) => s.write(bytes).await,
        }
    }

    async fn finish(self) -> Result<(), BlobError> {
        match self {
            Sink::Memory(u) => u.finish().await,
            Sink::Spooled(s) => s.finish().await,
        }
    }

    async fn abort(self, key: &str) {
        match self {
            Sink::Memory(u) => u.abort(key).await,
            Sink::Spooled(s) => s.abort().await,
        }
    }
}

/// A streaming put to the local file system: a multipart upload (a staging file renamed into
/// place when complete) from the first byte, so what a client sends is on disk at once.
struct Upload<'a> {
    store: &'a BlobStore,
    path: Path,
    multipart: AbortOnDrop,
}

impl Upload<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        if self.multipart.0.is_none() {
            let upload = self.store.inner.store.put_multipart(&self.path).await.map_err(store_err)?;
            self.multipart.0 = Some(WriteMultipart::new_with_chunk_size(upload, LOCAL_PART_BYTES));
        }
        let w = self.multipart.0.as_mut().expect("started above");
        w.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(store_err)?;
        // Copied into the part buffer: the body's chunk may pin a larger read buffer.
        w.write(bytes);
        Ok(())
    }

    async fn finish(mut self) -> Result<(), BlobError> {
        match self.multipart.0.take() {
            // `finish` aborts the upload itself when a part or the completion fails.
            Some(w) => w.finish().await.map(drop).map_err(store_err),
            // An empty body.
            None => self.store.inner.store.put(&self.path, PutPayload::new()).await.map(drop).map_err(store_err),
        }
    }

    async fn abort(mut self, key: &str) {
        if let Some(w) = self.multipart.0.take()
            && let Err(e) = w.abort().await
        {
            tracing::warn!(key, err = %e, "aborting a refused upload failed");
        }
    }
}

/// Aborts a multipart upload that was neither finished nor aborted, e.g. when the request
/// handler's future is dropped mid-body.
struct AbortOnDrop(Option<WriteMultipart>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = w.abort().await {
                    tracing::warn!(err = %e, "aborting an abandoned upload failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
