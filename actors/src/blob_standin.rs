//! TEMPORARY stand-in for helper B's `blob` module (local file system only), with the contract's
//! API; deleted when branch `blob` is merged.

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[derive(Clone, Debug)]
pub struct BlobConfig {
    pub kind: BlobKind,
    pub cipher: Option<crate::store::Cipher>,
}

#[derive(Clone, Debug)]
pub enum BlobKind {
    Local { dir: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the body is larger than allowed")]
    TooLarge,
    #[error("reading the body failed: {0}")]
    Body(String),
    #[error("no such blob")]
    NotFound,
    #[error("blob store: {0}")]
    Store(String),
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    dir: Arc<PathBuf>,
}

fn io(e: std::io::Error) -> BlobError {
    if e.kind() == std::io::ErrorKind::NotFound { BlobError::NotFound } else { BlobError::Store(e.to_string()) }
}

impl BlobStore {
    pub async fn open(cfg: BlobConfig) -> Result<BlobStore, BlobError> {
        let BlobKind::Local { dir } = cfg.kind;
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        Ok(BlobStore { dir: Arc::new(dir) })
    }

    pub fn shared(&self) -> bool {
        false
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    pub async fn put_stream<S>(&self, key: &str, mut body: S, max: u64) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let path = self.path(key);
        tokio::fs::create_dir_all(path.parent().expect("a key has a folder")).await.map_err(io)?;
        let tmp = path.with_extension(format!("part{}", rand::random::<u32>()));
        let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut n = 0u64;
        let res = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                n += chunk.len() as u64;
                if n > max {
                    return Err(BlobError::TooLarge);
                }
                f.write_all(&chunk).await.map_err(io)?;
            }
            f.flush().await.map_err(io)?;
            Ok(())
        }
        .await;
        match res {
            Ok(()) => {
                tokio::fs::rename(&tmp, &path).await.map_err(io)?;
                Ok(n)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.put_stream(key, futures::stream::iter([Ok(bytes)]), u64::MAX).await.map(|_| ())
    }

    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<(BoxStream<'static, Result<Bytes, BlobError>>, u64), BlobError> {
        let mut f = tokio::fs::File::open(self.path(key)).await.map_err(io)?;
        let size = f.metadata().await.map_err(io)?.len();
        let r = range.unwrap_or(0..size);
        f.seek(std::io::SeekFrom::Start(r.start)).await.map_err(io)?;
        let left = r.end.saturating_sub(r.start);
        let stream = futures::stream::unfold((f, left), |(mut f, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; left.min(64 * 1024) as usize];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(k) => {
                    buf.truncate(k);
                    Some((Ok(Bytes::from(buf)), (f, left - k as u64)))
                }
                Err(e) => Some((Err(io(e)), (f, 0))),
            }
        })
        .boxed();
        Ok((stream, size))
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}
