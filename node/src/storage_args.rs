//! Options of blob storage (attachments, thumbnails, voice notes), flattened into `ServeArgs`:
//! the local file system under the data directory (one node, the default) or an S3-compatible
//! store (what a cluster needs). `blob_config` validates them into the actors' `BlobConfig`.
//!
//! The S3 secret key is read from a file or the environment as well as the command line, so it
//! need not show in the process list; `Debug` never prints it.

use anyhow::{Context, bail};
use confab_actors::blob::{BlobConfig, BlobKind};
use confab_actors::store::Cipher;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where attachments are stored.
#[derive(clap::Args, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageArgs {
    /// Blob storage for attachments: `local` (files under <data-dir>/blobs; one node only) or
    /// `s3` (any S3-compatible store, e.g. Garage or MinIO; what a cluster needs)
    /// [default: local].
    #[arg(long, env = "CONFAB_BLOB_STORE")]
    pub blob_store: Option<String>,
    /// URL of a self-hosted S3 store, e.g. `http://127.0.0.1:3900` (addressed path-style)
    /// [default: AWS S3 itself, by --s3-region].
    #[arg(long, env = "CONFAB_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The bucket (it must exist).
    #[arg(long, env = "CONFAB_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The region the store signs requests for (Garage: its `s3_region`) [default: us-east-1].
    #[arg(long, env = "CONFAB_S3_REGION")]
    pub s3_region: Option<String>,
    /// Access key id.
    #[arg(long, env = "CONFAB_S3_ACCESS_KEY")]
    pub s3_access_key: Option<String>,
    /// Secret key. Prefer --s3-secret-key-file or the env CONFAB_S3_SECRET_KEY: a flag shows in
    /// the process list.
    #[arg(long, env = "CONFAB_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// File holding the secret key (surrounding whitespace ignored).
    #[arg(long, env = "CONFAB_S3_SECRET_KEY_FILE")]
    pub s3_secret_key_file: Option<PathBuf>,
    /// Allow a plain-HTTP --s3-endpoint (a store on the same host or private network)
    /// [default: false].
    #[arg(long, env = "CONFAB_S3_ALLOW_HTTP")]
    pub s3_allow_http: Option<bool>,
    /// Prefix of every object name, so a bucket can hold other things too [default: none].
    #[arg(long, env = "CONFAB_S3_PREFIX")]
    pub s3_prefix: Option<String>,
}

impl std::fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageArgs")
            .field("blob_store", &self.blob_store)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key", &self.s3_access_key)
            .field("s3_secret_key", &self.s3_secret_key.as_ref().map(|_| "<redacted>"))
            .field("s3_secret_key_file", &self.s3_secret_key_file)
            .field("s3_allow_http", &self.s3_allow_http)
            .field("s3_prefix", &self.s3_prefix)
            .finish()
    }
}

impl StorageArgs {
    /// These options over `lo`'s (the config file's).
    pub fn over(&self, lo: &StorageArgs) -> StorageArgs {
        StorageArgs {
            blob_store: self.blob_store.clone().or(lo.blob_store.clone()),
            s3_endpoint: self.s3_endpoint.clone().or(lo.s3_endpoint.clone()),
            s3_bucket: self.s3_bucket.clone().or(lo.s3_bucket.clone()),
            s3_region: self.s3_region.clone().or(lo.s3_region.clone()),
            s3_access_key: self.s3_access_key.clone().or(lo.s3_access_key.clone()),
            s3_secret_key: self.s3_secret_key.clone().or(lo.s3_secret_key.clone()),
            s3_secret_key_file: self.s3_secret_key_file.clone().or(lo.s3_secret_key_file.clone()),
            s3_allow_http: self.s3_allow_http.or(lo.s3_allow_http),
            s3_prefix: self.s3_prefix.clone().or(lo.s3_prefix.clone()),
        }
    }

    /// The validated blob configuration. A cluster (`cluster`) refuses the local file system:
    /// each node would see only its own files.
    pub fn blob_config(&self, data_dir: &Path, cipher: Option<Cipher>, cluster: bool) -> anyhow::Result<BlobConfig> {
        let kind = match self.blob_store.as_deref().unwrap_or("local") {
            "local" => {
                if cluster {
                    bail!(
                        "a cluster needs blob storage every node shares: --seeds and --gossip-listen need \
                         --blob-store s3 with --s3-endpoint, --s3-bucket and keys (on the local file system each \
                         node would see only the attachments uploaded to it)"
                    );
                }
                BlobKind::Local { dir: data_dir.join("blobs") }
            }
            "s3" => {
                let need = |v: &Option<String>, flag: &str| -> anyhow::Result<String> {
                    match v.as_deref().map(str::trim) {
                        Some(s) if !s.is_empty() => Ok(s.to_owned()),
                        _ => bail!("--blob-store s3 needs {flag}"),
                    }
                };
                let secret_key = match (&self.s3_secret_key_file, &self.s3_secret_key) {
                    (Some(path), _) => std::fs::read_to_string(path)
                        .with_context(|| format!("reading the S3 secret key file {}", path.display()))?
                        .trim()
                        .to_owned(),
                    (None, secret) => need(secret, "--s3-secret-key-file (or CONFAB_S3_SECRET_KEY)")?,
                };
                if secret_key.is_empty() {
                    bail!("the S3 secret key is empty");
                }
                let allow_http = self.s3_allow_http.unwrap_or(false);
                let endpoint = self.s3_endpoint.clone().filter(|e| !e.trim().is_empty());
                if let Some(url) = &endpoint {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!("--s3-endpoint {url} is not a URL like https://s3.example.com");
                    }
                    if url.starts_with("http://") && !allow_http {
                        bail!(
                            "--s3-endpoint {url} is plain HTTP: add --s3-allow-http true if the store is on this \
                             host or a private network"
                        );
                    }
                }
                BlobKind::S3 {
                    endpoint,
                    bucket: need(&self.s3_bucket, "--s3-bucket")?,
                    region: self.s3_region.clone().unwrap_or_else(|| "us-east-1".into()),
                    access_key: need(&self.s3_access_key, "--s3-access-key")?,
                    secret_key,
                    allow_http,
                    prefix: self.s3_prefix.clone().unwrap_or_default(),
                    spool_dir: data_dir.join("blob-spool"),
                }
            }
            other => bail!("--blob-store must be local or s3, not {other}"),
        };
        Ok(BlobConfig { kind, cipher })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> StorageArgs {
        StorageArgs {
            blob_store: Some("s3".into()),
            s3_endpoint: Some("http://127.0.0.1:3900".into()),
            s3_bucket: Some("b".into()),
            s3_region: Some("garage".into()),
            s3_access_key: Some("GK1".into()),
            s3_secret_key: Some("sekrit".into()),
            s3_allow_http: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn local_by_default_and_refused_in_a_cluster() {
        let dir = Path::new("/data");
        let c = StorageArgs::default().blob_config(dir, None, false).unwrap();
        assert!(matches!(c.kind, BlobKind::Local { dir } if dir == Path::new("/data/blobs")));
        let err = StorageArgs::default().blob_config(dir, None, true).unwrap_err().to_string();
        assert!(err.contains("--blob-store s3"), "the refusal says what to do: {err}");
        assert!(s3().blob_config(dir, None, true).is_ok());
    }

    #[test]
    fn s3_settings_are_checked_and_the_secret_is_hidden() {
        let dir = Path::new("/data");
        let c = s3().blob_config(dir, None, false).unwrap();
        match c.kind {
            BlobKind::S3 { ref secret_key, ref region, allow_http, .. } => {
                assert_eq!((secret_key.as_str(), region.as_str(), allow_http), ("sekrit", "garage", true));
            }
            _ => panic!("not S3"),
        }
        assert!(!format!("{:?} {:?}", c, s3()).contains("sekrit"), "Debug never prints the secret");
        let without = |f: fn(&mut StorageArgs)| {
            let mut a = s3();
            f(&mut a);
            a.blob_config(dir, None, false).unwrap_err().to_string()
        };
        assert!(without(|a| a.s3_bucket = None).contains("--s3-bucket"));
        assert!(without(|a| a.s3_access_key = None).contains("--s3-access-key"));
        assert!(without(|a| a.s3_secret_key = None).contains("secret"));
        assert!(without(|a| a.s3_allow_http = None).contains("--s3-allow-http"));
        assert!(without(|a| a.s3_endpoint = Some("ftp://x".into())).contains("not a URL"));
        assert!(without(|a| a.blob_store = Some("nfs".into())).contains("local or s3"));
    }

    #[test]
    fn the_secret_key_comes_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s3.secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let args = StorageArgs { s3_secret_key: None, s3_secret_key_file: Some(file), ..s3() };
        match args.blob_config(dir.path(), None, false).unwrap().kind {
            BlobKind::S3 { secret_key, .. } => assert_eq!(secret_key, "from-file"),
            _ => panic!("not S3"),
        }
        let missing = StorageArgs { s3_secret_key_file: Some(dir.path().join("nope")), ..s3() };
        assert!(missing.blob_config(dir.path(), None, false).is_err());
    }
}
