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

/// Request handlers run `put_stream` on spawned tasks: its future must be `Send` on every backend.
#[allow(dead_code)]
fn put_stream_is_send(store: &BlobStore) {
    fn send<T: Send>(_: T) {}
    send(store.put_stream("k", futures::stream::empty(), 1));
    send(store.get("k", None));
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

// Encryption at rest.

use crate::store::Cipher;

async fn sealed(dir: &std::path::Path, cipher: Cipher) -> BlobStore {
    BlobStore::open(BlobConfig { kind: BlobKind::Local { dir: dir.join("blobs") }, cipher: Some(cipher) })
        .await
        .unwrap()
}

/// The whole read, an error from `get` or from its stream alike.
async fn try_read(store: &BlobStore, key: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, BlobError> {
    let (mut s, _) = store.get(key, range).await?;
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

const C: usize = crypt::CHUNK as usize;

#[tokio::test]
async fn sealed_objects_round_trip_in_plaintext_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path(), Cipher::new([7; 32], &[])).await;
    for (key, n) in [("u/empty", 0), ("u/one", 1), ("u/chunk", C), ("u/two", 2 * C), ("u/odd", 3 * C + 17)] {
        let data = pattern(n);
        let stored = store.put_stream(key, body(&data, 10_007), n as u64).await.unwrap();
        assert_eq!(stored, n as u64, "{key}: put answers plaintext bytes");
        let (back, size) = read_all(&store, key, None).await;
        assert_eq!(size, n as u64, "{key}: get answers the plaintext size");
        assert!(back == data, "{key}: round trip");
        assert_eq!(store.size(key).await.unwrap(), n as u64);
        let file = std::fs::read(dir.path().join("blobs").join(key)).unwrap();
        assert!(file.starts_with(crypt::MAGIC) && file.len() > n, "{key}: stored sealed");
        if n >= 1000 {
            assert!(!file.windows(64).any(|w| w == &data[500..564]), "{key}: no plaintext on disk");
        }
    }
    store.put("t/small", Bytes::from_static(b"thumbnail bytes")).await.unwrap();
    assert_eq!(read_all(&store, "t/small", None).await, (b"thumbnail bytes".to_vec(), 15));
    let on_disk = std::fs::read(dir.path().join("blobs/t/small")).unwrap();
    assert!(!on_disk.windows(9).any(|w| w == b"thumbnail"));
    // The cap counts plaintext bytes, and a refused sealed upload leaves nothing either.
    let err = store.put_stream("u/over", body(&pattern(C + 1), 4096), C as u64).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge));
    assert!(!dir.path().join("blobs/u/over").exists());
}

#[tokio::test]
async fn sealed_ranges_cross_chunk_borders() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path(), Cipher::new([7; 32], &[])).await;
    let n = 4 * C + 1000;
    let data = pattern(n);
    store.put_stream("u/r", body(&data, 65_000), u64::MAX).await.unwrap();
    let (c, n64) = (C as u64, n as u64);
    for r in [0..1, 0..c, c - 1..c + 1, c..2 * c, 10..3 * c + 5, 4 * c..n64, n64 - 1..n64, 5..n64, 2 * c + 3..2 * c + 4]
    {
        let (got, size) = read_all(&store, "u/r", Some(r.clone())).await;
        assert_eq!(size, n64);
        assert!(got == data[r.start as usize..r.end as usize], "range {r:?}: {} bytes", got.len());
    }
    let (got, _) = read_all(&store, "u/r", Some(n64 - 10..n64 + 100)).await;
    assert!(got == data[n - 10..], "clipped to the end");
    assert_eq!(read_all(&store, "u/r", Some(n64..n64 + 1)).await, (vec![], n64), "past the end");
}

#[tokio::test]
async fn tampering_truncation_and_moves_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealed(dir.path(), Cipher::new([7; 32], &[])).await;
    let data = pattern(3 * C + 100);
    let file = dir.path().join("blobs/u/t");
    let put = async |store: &BlobStore| {
        store.put_stream("u/t", body(&data, 8192), u64::MAX).await.unwrap();
        std::fs::read(&file).unwrap()
    };
    let original = put(&store).await;
    let sealed_chunk = C + 16;
    let header = crypt::HEADER as usize;

    // One flipped bit in the second chunk: reading it fails; the first chunk still reads.
    let mut bad = original.clone();
    bad[header + sealed_chunk + 5] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    assert!(matches!(try_read(&store, "u/t", None).await, Err(BlobError::Store(_))));
    assert!(try_read(&store, "u/t", Some(0..100)).await.unwrap() == data[..100]);
    // A changed salt in the header: nothing reads.
    let mut bad = original.clone();
    bad[20] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    assert!(try_read(&store, "u/t", Some(0..10)).await.is_err());

    // Truncated at a chunk border (the last whole chunk now looks final), and mid-chunk.
    for cut in [header + 2 * sealed_chunk, header + 2 * sealed_chunk + 40, header + 10] {
        std::fs::write(&file, &original[..cut]).unwrap();
        assert!(try_read(&store, "u/t", None).await.is_err(), "truncated to {cut} bytes");
    }
    // Chunks swapped.
    let mut swapped = original[..header].to_vec();
    swapped.extend_from_slice(&original[header + sealed_chunk..header + 2 * sealed_chunk]);
    swapped.extend_from_slice(&original[header..header + sealed_chunk]);
    swapped.extend_from_slice(&original[header + 2 * sealed_chunk..]);
    std::fs::write(&file, &swapped).unwrap();
    assert!(try_read(&store, "u/t", Some(0..10)).await.is_err(), "reordered");
    // Moved to another key.
    std::fs::write(&file, &original).unwrap();
    std::fs::write(dir.path().join("blobs/u/moved"), &original).unwrap();
    assert!(try_read(&store, "u/moved", None).await.is_err(), "moved");
    assert!(try_read(&store, "u/t", None).await.unwrap() == data, "the original still reads");
}

#[tokio::test]
async fn keys_rotate_and_clear_objects_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let clear = local(dir.path()).await;
    clear.put("u/before", Bytes::from_static(b"stored before encryption was on")).await.unwrap();
    let old = sealed(dir.path(), Cipher::new([1; 32], &[])).await;
    old.put("u/old", Bytes::from_static(b"under the old key")).await.unwrap();
    let rotated = sealed(dir.path(), Cipher::new([2; 32], &[[1; 32]])).await;
    assert_eq!(read_all(&rotated, "u/old", None).await.0, b"under the old key");
    assert_eq!(read_all(&rotated, "u/before", None).await.0, b"stored before encryption was on");
    let forgot = sealed(dir.path(), Cipher::new([2; 32], &[])).await;
    let err = try_read(&forgot, "u/old", None).await.unwrap_err();
    assert!(matches!(err, BlobError::Store(ref m) if m.contains("not configured")), "{err:?}");
}
