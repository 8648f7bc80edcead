//! The S3 store the tests use: a real Garage that `.ci/garage.sh` starts (CI does it in
//! `.ci/run`; by hand: `.ci/garage.sh start /tmp/garage && . /tmp/garage/env`), named by
//! `CONFAB_TEST_S3_ENDPOINT`, `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY` and `_REGION`.
//!
//! Clusters need shared blob storage, so every cluster sandbox gives its nodes this store under
//! a prefix of its own.

use confab_actors::blob::{BlobConfig, BlobKind};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::Path;

/// Where the test S3 store is.
#[derive(Clone, Debug)]
pub struct S3Env {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Env {
    /// The store named by the environment, or None when `CONFAB_TEST_S3_ENDPOINT` is unset.
    pub fn from_env() -> Option<S3Env> {
        let endpoint = std::env::var("CONFAB_TEST_S3_ENDPOINT").ok().filter(|e| !e.is_empty())?;
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("CONFAB_TEST_S3_ENDPOINT is set but {name} is not"))
        };
        Some(S3Env {
            endpoint,
            bucket: var("CONFAB_TEST_S3_BUCKET"),
            region: std::env::var("CONFAB_TEST_S3_REGION").unwrap_or_else(|_| "garage".into()),
            access_key: var("CONFAB_TEST_S3_ACCESS_KEY"),
            secret_key: var("CONFAB_TEST_S3_SECRET_KEY"),
        })
    }

    /// The store, or a panic that says how to start one (clusters cannot run without it).
    pub fn required(what: &str) -> S3Env {
        S3Env::from_env().unwrap_or_else(|| {
            panic!(
                "{what} needs an S3 store and CONFAB_TEST_S3_ENDPOINT is unset: start Garage with \
                 `.ci/garage.sh start /tmp/garage && . /tmp/garage/env` (CI's .ci/run does it)"
            )
        })
    }

    /// A blob configuration on this store under `prefix`.
    pub fn blob_config(&self, prefix: &str, cipher: Option<confab_actors::store::Cipher>) -> BlobConfig {
        BlobConfig {
            kind: BlobKind::S3 {
                endpoint: Some(self.endpoint.clone()),
                bucket: self.bucket.clone(),
                region: self.region.clone(),
                access_key: self.access_key.clone(),
                secret_key: self.secret_key.clone(),
                allow_http: self.endpoint.starts_with("http://"),
                prefix: prefix.to_owned(),
                spool_dir: self.spool_dir(),
            },
            cipher,
        }
    }

    /// Where the tests' blob stores spool parts.
    pub fn spool_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join("confab-test-spool")
    }

    /// `confab serve` options for this store under `prefix`; the secret key goes in a file
    /// under `dir`, not on the command line.
    pub fn node_args(&self, dir: &Path, prefix: &str) -> Vec<String> {
        std::fs::create_dir_all(dir).expect("create dir");
        let secret = dir.join("s3-secret");
        std::fs::write(&secret, &self.secret_key).expect("write the S3 secret");
        vec![
            "--blob-store".into(),
            "s3".into(),
            "--s3-endpoint".into(),
            self.endpoint.clone(),
            "--s3-allow-http".into(),
            self.endpoint.starts_with("http://").to_string(),
            "--s3-bucket".into(),
            self.bucket.clone(),
            "--s3-region".into(),
            self.region.clone(),
            "--s3-access-key".into(),
            self.access_key.clone(),
            "--s3-secret-key-file".into(),
            secret.display().to_string(),
            "--s3-prefix".into(),
            prefix.to_owned(),
        ]
    }

    /// The names of the objects stored under `prefix`.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let prefix = object_store::path::Path::from(prefix);
        let found: Vec<_> = self.raw().list(Some(&prefix)).try_collect().await.expect("list objects");
        found.into_iter().map(|m| m.location.to_string()).collect()
    }

    /// Deletes every object under `prefix` (a test's clean-up).
    pub async fn remove_all(&self, prefix: &str) {
        let store = self.raw();
        for name in self.list(prefix).await {
            store.delete(&object_store::path::Path::from(name.as_str())).await.expect("delete an object");
        }
    }

    fn raw(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .build()
            .expect("S3 settings")
    }

    /// The multipart uploads begun and neither completed nor aborted under `prefix` (S3's
    /// ListMultipartUploads, signed by curl: object_store has no call for it).
    pub async fn unfinished_uploads(&self, prefix: &str) -> Vec<String> {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-f", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--aws-sigv4"])
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            // `uploads=` and `%2F`: curl signs a parameter without a value, and a raw `/` in
            // one, differently from the server.
            .arg(format!("{}/{}?prefix={}&uploads=", self.endpoint, self.bucket, prefix.replace('/', "%2F")))
            .output()
            .await
            .expect("run curl");
        assert!(out.status.success(), "ListMultipartUploads: {}", String::from_utf8_lossy(&out.stderr));
        let xml = String::from_utf8_lossy(&out.stdout);
        xml.split("<Upload>").skip(1).map(|u| u.split("</Upload>").next().unwrap_or_default().to_owned()).collect()
    }
}
