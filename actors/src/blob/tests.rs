//! The local backend: streaming, the cap, aborts that leave nothing behind, ranges.

use super::*;
use std::time::{Duration, Instant};

async fn local(dir: &std::path::Path) -> BlobStore {
    BlobStore::open(BlobConfig { kind: BlobKind::Local { dir: dir.join("blobs") }, cipher: None }).await.unwrap()
}

/// `n` bytes of a pattern that differs at every offset within a 251-byte period.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The body as a stream of `chunk`-sized pieces.
fn body(bytes: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + use<> {
    let pieces: Vec<_> = bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(pieces)
}

/// Every regular file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

async fn read_all(store: &BlobStore, key: &str, range: Option<Range<u64>>) -> (Vec<u8>, u64) {
    let (mut s, size) = store.get(key, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    (out, size)
}

#[tokio::test]
async fn streams_a_body_in_many_parts_and_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path()).await;
    assert!(!store.shared());
    let data = pattern(3 * LOCAL_PART_BYTES + 12_345);
    let n = store.put_stream("u/abc", body(&data, 7_919), data.len() as u64).await.unwrap();
    assert_eq!(n, data.len() as u64);
    let (back, size) = read_all(&store, "u/abc", None).await;
    assert_eq!(size, data.len() as u64);
    assert!(back == data, "the bytes come back as written");
    assert_eq!(files(dir.path()).len(), 1, "one file, no staging left: {:?}", files(dir.path()));
    // An empty body is an empty object.
    assert_eq!(store.put_stream("u/empty", body(&[], 1), 10).await.unwrap(), 0);
    assert_eq!(read_all(&store, "u/empty", None).await, (vec![], 0));
}

#[tokio::test]
async fn the_cap_is_exact_and_a_refused_body_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path()).await;
    let data = pattern(LOCAL_PART_BYTES * 2 + 1);
    let max = data.len() as u64;
    assert_eq!(store.put_stream("u/fits", body(&data, 65_536), max).await.unwrap(), max);
    store.delete("u/fits").await.unwrap();
    let err = store.put_stream("u/over", body(&data, 65_536), max - 1).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge), "{err:?}");
    assert!(matches!(store.get("u/over", None).await, Err(BlobError::NotFound)));
    assert_eq!(files(dir.path()), Vec::<PathBuf>::new(), "nothing stays stored");
}

#[tokio::test]
async fn a_body_error_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path()).await;
    let good = body(&pattern(LOCAL_PART_BYTES + 10), 4096);
    let cut = futures::stream::iter([Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut off"))]);
    let err = store.put_stream("u/cut", good.chain(cut), u64::MAX).await.unwrap_err();
    assert!(matches!(err, BlobError::Body(ref m) if m.contains("cut off")), "{err:?}");
    assert!(matches!(store.get("u/cut", None).await, Err(BlobError::NotFound)));
    assert_eq!(files(dir.path()), Vec::<PathBuf>::new(), "nothing stays stored");
}

#[tokio::test]
async fn a_dropped_upload_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path()).await;
    // Some bytes, then a body that never ends: the future is dropped while it waits.
    let endless = body(&pattern(LOCAL_PART_BYTES * 2), 8192).chain(futures::stream::pending());
    let put = store.put_stream("u/dropped", endless, u64::MAX);
    assert!(tokio::time::timeout(Duration::from_millis(200), put).await.is_err());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !files(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "staging left behind: {:?}", files(dir.path()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn ranges_are_served_and_clipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path()).await;
    let data = pattern(100_000);
    store.put_stream("u/r", body(&data, 10_000), u64::MAX).await.unwrap();
    for r in [0..1, 0..100_000, 99_999..100_000, 12_345..67_890] {
        let (got, size) = read_all(&store, "u/r", Some(r.clone())).await;
        assert_eq!(size, 100_000);
        assert!(got == data[r.start as usize..r.end as usize], "range {r:?}");
    }
    let (got, _) = read_all(&store, "u/r", Some(99_000..200_000)).await;
    assert!(got == data[99_000..], "clipped to the end");
    assert_eq!(read_all(&store, "u/r", Some(100_000..100_010)).await, (vec![], 100_000), "past the end");
    assert_eq!(store.size("u/r").await.unwrap(), 100_000);
}

#[tokio::test]
async fn small_puts_delete_and_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path()).await;
    store.put("t/x", Bytes::from_static(b"thumb")).await.unwrap();
    assert_eq!(read_all(&store, "t/x", None).await, (b"thumb".to_vec(), 5));
    store.put("t/x", Bytes::from_static(b"again")).await.unwrap();
    assert_eq!(read_all(&store, "t/x", None).await.0, b"again");
    store.delete("t/x").await.unwrap();
    store.delete("t/x").await.unwrap();
    assert!(matches!(store.get("t/x", None).await, Err(BlobError::NotFound)));
    assert!(matches!(store.size("t/x").await, Err(BlobError::NotFound)));
    for bad in ["", "/abs", "dir/", "a/../b", "a//b"] {
        assert!(matches!(store.put(bad, Bytes::new()).await, Err(BlobError::Store(_))), "{bad:?}");
    }
    assert_eq!(files(dir.path()), Vec::<PathBuf>::new());
}
