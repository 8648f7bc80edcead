//! Blob storage on a real S3 server (Garage, started by `.ci/garage.sh`): streaming multipart
//! puts, the cap and cut-off bodies leaving neither objects nor unfinished uploads, ranges,
//! encryption at rest, delete. Each test works under a prefix of its own and removes what it
//! stored. Without `CONFAB_TEST_S3_ENDPOINT` they print why and pass without running.

use bytes::Bytes;
use confab_actors::blob::{BlobError, BlobStore};
use confab_actors::store::Cipher;
use confab_tests::eventually;
use confab_tests::s3::S3Env;
use futures::{Stream, StreamExt};
use std::ops::Range;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// The test store under a fresh prefix, or None (with a message) when no S3 store is set.
async fn store(test: &str, cipher: Option<Cipher>) -> Option<(S3Env, String, BlobStore)> {
    let Some(env) = S3Env::from_env() else {
        eprintln!("skipping {test}: CONFAB_TEST_S3_ENDPOINT is unset (`.ci/garage.sh start DIR && . DIR/env`)");
        return None;
    };
    let prefix = format!("blob-s3/{test}-{:016x}", rand::random::<u64>());
    let store = BlobStore::open(env.blob_config(&prefix, cipher)).await.expect("open the S3 store");
    Some((env, prefix, store))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ (i / 251) as u8).collect()
}

fn body(bytes: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + use<> {
    let pieces: Vec<_> = bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(pieces)
}

async fn read(store: &BlobStore, key: &str, range: Option<Range<u64>>) -> Result<(Vec<u8>, u64), BlobError> {
    let (mut s, size) = store.get(key, range).await?;
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok((out, size))
}

/// Nothing under `prefix`: no object, no unfinished multipart upload, and no named file in the
/// local spool (parts wait there unlinked).
async fn assert_empty(env: &S3Env, prefix: &str) {
    eventually("no objects, no unfinished uploads, no spool files", || async {
        let spool = std::fs::read_dir(env.spool_dir()).map_or(0, |d| d.count());
        (env.list(prefix).await.is_empty() && env.unfinished_uploads(prefix).await.is_empty() && spool == 0)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn streams_a_large_body_in_parts_reads_it_back_and_deletes_it() {
    let Some((env, prefix, store)) = store("large", None).await else { return };
    assert!(store.shared(), "S3 is shared by every node");
    let data = pattern(12 * MIB + 4321);
    let n = store.put_stream("u/large", body(&data, 64 * 1024), data.len() as u64).await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(env.list(&prefix).await, vec![format!("{prefix}/u/large")]);
    let (back, size) = read(&store, "u/large", None).await.unwrap();
    assert_eq!(size, data.len() as u64);
    assert!(back == data, "the bytes come back as written");
    // An empty body is an empty object (a multipart upload of no part).
    assert_eq!(store.put_stream("u/empty", body(&[], 1), 10).await.unwrap(), 0);
    assert_eq!(read(&store, "u/empty", None).await.unwrap(), (vec![], 0));
    store.put("t/thumb", Bytes::from_static(b"small")).await.unwrap();
    assert_eq!(read(&store, "t/thumb", None).await.unwrap().0, b"small");
    for key in ["u/large", "u/empty", "t/thumb"] {
        store.delete(key).await.unwrap();
        store.delete(key).await.unwrap();
        assert!(matches!(store.get(key, None).await, Err(BlobError::NotFound)), "{key} is gone");
    }
    assert_empty(&env, &prefix).await;
}

#[tokio::test]
async fn the_cap_a_cut_body_and_a_dropped_upload_leave_nothing() {
    let Some((env, prefix, store)) = store("refused", None).await else { return };
    // Over the cap after a whole part has gone to the store.
    let data = pattern(7 * MIB);
    let err = store.put_stream("u/over", body(&data, 64 * 1024), 6 * MIB as u64).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge), "{err:?}");
    assert_empty(&env, &prefix).await;
    // One byte over.
    let small = pattern(1000);
    let err = store.put_stream("u/one-over", body(&small, 100), 999).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge), "{err:?}");
    assert_empty(&env, &prefix).await;
    // Cut off after 6 MiB.
    let cut = futures::stream::iter([Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut off"))]);
    let err = store.put_stream("u/cut", body(&data[..6 * MIB], 64 * 1024).chain(cut), u64::MAX).await.unwrap_err();
    assert!(matches!(err, BlobError::Body(_)), "{err:?}");
    assert_empty(&env, &prefix).await;
    // A body that stops coming, and the request handler's future is dropped.
    let stalled = body(&data[..6 * MIB], 64 * 1024).chain(futures::stream::pending());
    let put = store.put_stream("u/dropped", stalled, u64::MAX);
    assert!(tokio::time::timeout(Duration::from_secs(2), put).await.is_err(), "the body never ends");
    assert_empty(&env, &prefix).await;
}

#[tokio::test]
async fn ranges_are_served_and_clipped() {
    let Some((env, prefix, store)) = store("ranges", None).await else { return };
    let data = pattern(6 * MIB + 10);
    store.put_stream("u/r", body(&data, 100_000), u64::MAX).await.unwrap();
    let n = data.len() as u64;
    for r in [0..1, 5 * MIB as u64 - 3..5 * MIB as u64 + 3, n - 1..n, 12_345..67_890] {
        let (got, size) = read(&store, "u/r", Some(r.clone())).await.unwrap();
        assert_eq!(size, n);
        assert!(got == data[r.start as usize..r.end as usize], "range {r:?}");
    }
    assert!(read(&store, "u/r", Some(n - 5..n + 100)).await.unwrap().0 == data[data.len() - 5..], "clipped");
    assert_eq!(read(&store, "u/r", Some(n..n + 1)).await.unwrap(), (vec![], n), "past the end");
    assert_eq!(store.size("u/r").await.unwrap(), n);
    store.delete("u/r").await.unwrap();
    assert_empty(&env, &prefix).await;
}

#[tokio::test]
async fn objects_are_sealed_at_rest_on_s3() {
    let Some((env, prefix, store)) = store("sealed", Some(Cipher::new([9; 32], &[]))).await else { return };
    // The same prefix without the key: what the bucket holds.
    let raw = BlobStore::open(env.blob_config(&prefix, None)).await.unwrap();
    let data = pattern(6 * MIB + 777);
    let n = data.len() as u64;
    assert_eq!(store.put_stream("u/s", body(&data, 50_000), n).await.unwrap(), n, "plaintext bytes");
    let (back, size) = read(&store, "u/s", None).await.unwrap();
    assert_eq!(size, n, "the plaintext size");
    assert!(back == data);
    for r in [0..10, 65_530..65_542, 3 * 65_536 - 1..5 * 65_536 + 1, n - 3..n] {
        let (got, _) = read(&store, "u/s", Some(r.clone())).await.unwrap();
        assert!(got == data[r.start as usize..r.end as usize], "range {r:?}");
    }
    let (stored, stored_size) = read(&raw, "u/s", None).await.unwrap();
    assert!(stored_size > n && stored.starts_with(b"CFBLOB"), "sealed in the bucket");
    assert!(!stored.windows(64).any(|w| w == &data[1000..1064]), "no plaintext in the bucket");
    // Tampered in the bucket: the read fails.
    let mut bad = stored.clone();
    bad[200_000] ^= 1;
    raw.put("u/s", Bytes::from(bad)).await.unwrap();
    assert!(read(&store, "u/s", None).await.is_err(), "a changed byte is detected");
    // Refused while sealing: nothing stays either.
    let err = store.put_stream("u/over", body(&data, 50_000), n - 1).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge));
    store.delete("u/s").await.unwrap();
    assert_empty(&env, &prefix).await;
}
