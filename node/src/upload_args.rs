//! Options of uploads and media (`confab serve --upload-…`), flattened into `ServeArgs`: the
//! limits of `POST /api/uploads`, the lifetime of signed media URLs, and the sweeper.

use anyhow::bail;
use confab_gateway::uploads::UploadConfig;
use serde::Deserialize;
use std::time::Duration;

/// Upload and media options.
#[derive(clap::Args, Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct UploadArgs {
    /// Largest image upload, in bytes [default: 10485760, 10 MiB].
    #[arg(long, env = "CONFAB_UPLOAD_MAX_IMAGE_BYTES")]
    pub upload_max_image_bytes: Option<u64>,
    /// Largest voice note, in bytes [default: 5242880, 5 MiB].
    #[arg(long, env = "CONFAB_UPLOAD_MAX_VOICE_BYTES")]
    pub upload_max_voice_bytes: Option<u64>,
    /// Largest other file (PDF, text, office document, archive, audio), in bytes [default:
    /// 26214400, 25 MiB].
    #[arg(long, env = "CONFAB_UPLOAD_MAX_FILE_BYTES")]
    pub upload_max_file_bytes: Option<u64>,
    /// Bytes of files one user may keep stored, 0 for no limit [default: 1073741824, 1 GiB].
    #[arg(long, env = "CONFAB_UPLOAD_QUOTA_BYTES")]
    pub upload_quota_bytes: Option<u64>,
    /// Uploads one user may make per minute, 0 for no limit [default: 30].
    #[arg(long, env = "CONFAB_UPLOADS_PER_MINUTE")]
    pub uploads_per_minute: Option<u64>,
    /// Seconds an upload's body may take to arrive [default: 600].
    #[arg(long, env = "CONFAB_UPLOAD_TIMEOUT_SECS")]
    pub upload_timeout_secs: Option<u64>,
    /// Largest image, in pixels (width × height), against decompression bombs [default: 50000000].
    #[arg(long, env = "CONFAB_UPLOAD_MAX_IMAGE_PIXELS")]
    pub upload_max_image_pixels: Option<u64>,
    /// Images decoded at once (thumbnails, metadata stripping) [default: 2].
    #[arg(long, env = "CONFAB_UPLOAD_IMAGE_WORKERS")]
    pub upload_image_workers: Option<usize>,
    /// Seconds an upload may wait for a message to carry it before the sweeper deletes it
    /// [default: 86400, 24 h].
    #[arg(long, alias = "upload-orphan-ttl", env = "CONFAB_UPLOAD_ORPHAN_TTL_SECS")]
    pub upload_orphan_ttl_secs: Option<u64>,
    /// Seconds between two runs of the sweeper, which deletes orphan uploads and the files of
    /// deleted messages and rooms (one node of a cluster runs it at a time) [default: 300].
    #[arg(long, env = "CONFAB_UPLOAD_SWEEP_SECS")]
    pub upload_sweep_secs: Option<u64>,
    /// Seconds a signed media URL stays valid [default: 1800, 30 minutes].
    #[arg(long, env = "CONFAB_MEDIA_URL_TTL_SECS")]
    pub media_url_ttl_secs: Option<u64>,
}

/// The resolved upload settings.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub gateway: UploadConfig,
    pub orphan_ttl: Duration,
    pub sweep_every: Duration,
    pub media_url_ttl: Duration,
}

macro_rules! merge_uploads {
    ($hi:expr, $lo:expr, $($f:ident),*) => { UploadArgs { $($f: $hi.$f.clone().or($lo.$f.clone())),* } };
}

impl UploadArgs {
    /// These options over `lower`'s (a file's).
    pub fn over(&self, lower: &UploadArgs) -> UploadArgs {
        merge_uploads!(
            self,
            lower,
            upload_max_image_bytes,
            upload_max_voice_bytes,
            upload_max_file_bytes,
            upload_quota_bytes,
            uploads_per_minute,
            upload_timeout_secs,
            upload_max_image_pixels,
            upload_image_workers,
            upload_orphan_ttl_secs,
            upload_sweep_secs,
            media_url_ttl_secs
        )
    }

    /// Defaults applied and values checked.
    pub fn resolve(&self) -> anyhow::Result<UploadSettings> {
        let d = UploadConfig::default();
        let at_least_one = |v: Option<u64>, default: u64, name: &str| -> anyhow::Result<u64> {
            match v {
                Some(0) => bail!("--{name} must be at least 1"),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        let gateway = UploadConfig {
            max_image_bytes: at_least_one(self.upload_max_image_bytes, d.max_image_bytes, "upload-max-image-bytes")?,
            max_voice_bytes: at_least_one(self.upload_max_voice_bytes, d.max_voice_bytes, "upload-max-voice-bytes")?,
            max_file_bytes: at_least_one(self.upload_max_file_bytes, d.max_file_bytes, "upload-max-file-bytes")?,
            quota_bytes: self.upload_quota_bytes.unwrap_or(d.quota_bytes),
            per_minute: self.uploads_per_minute.unwrap_or(d.per_minute),
            body_timeout: Duration::from_secs(at_least_one(
                self.upload_timeout_secs,
                d.body_timeout.as_secs(),
                "upload-timeout-secs",
            )?),
            image_workers: at_least_one(
                self.upload_image_workers.map(|w| w as u64),
                d.image_workers as u64,
                "upload-image-workers",
            )? as usize,
            max_image_pixels: at_least_one(
                self.upload_max_image_pixels,
                d.max_image_pixels,
                "upload-max-image-pixels",
            )?,
        };
        Ok(UploadSettings {
            gateway,
            orphan_ttl: Duration::from_secs(at_least_one(
                self.upload_orphan_ttl_secs,
                24 * 3600,
                "upload-orphan-ttl-secs",
            )?),
            sweep_every: Duration::from_secs(at_least_one(self.upload_sweep_secs, 300, "upload-sweep-secs")?),
            media_url_ttl: Duration::from_secs(at_least_one(self.media_url_ttl_secs, 1800, "media-url-ttl-secs")?),
        })
    }
}
