//! Attachments: the files a message carries. The bytes live in blob storage; a message row holds
//! each attachment's metadata (`Attachment`), and the frames and history entries clients read
//! list them with signed, expiring URLs (`AttachmentView`). Signing is the node's business
//! (`MediaUrls`): this crate only says where a URL goes.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The most attachments one message carries.
pub const MAX_ATTACHMENTS: usize = 10;

/// Length of an upload id: 128 random bits in lowercase hex.
pub const UPLOAD_ID_LEN: usize = 32;

/// Whether `id` has the form of an upload id (so it can be used in a storage key or a URL).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == UPLOAD_ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What an attachment is, as the app shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A picture: width, height and a thumbnail.
    Image,
    /// A voice note recorded in the app: a duration.
    Voice,
    /// Any other sound file.
    Audio,
    /// Everything else (PDF, text, office documents, archives): a download.
    File,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Voice => "voice",
            AttachmentKind::Audio => "audio",
            AttachmentKind::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<AttachmentKind> {
        match s {
            "image" => Some(AttachmentKind::Image),
            "voice" => Some(AttachmentKind::Voice),
            "audio" => Some(AttachmentKind::Audio),
            "file" => Some(AttachmentKind::File),
            _ => None,
        }
    }
}

/// One attachment of a message as stored with it (JSON in `messages.attachments`, postcard in
/// the history cache: so no field is ever skipped when serializing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Arc<str>,
    /// The file name the uploader gave (shown, never used as a path).
    pub name: String,
    /// Bytes, as served.
    pub size: u64,
    /// The type read from the bytes.
    pub mime: String,
    pub kind: AttachmentKind,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    /// A thumbnail is stored beside it.
    pub thumb: bool,
}

/// Signs media URLs: `url(id, false)` for the file, `url(id, true)` for its thumbnail.
pub trait MediaUrls {
    fn url(&self, id: &str, thumb: bool) -> String;
}

/// An attachment as a client reads it, with signed URLs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub id: Arc<str>,
    pub name: String,
    pub size: u64,
    pub mime: String,
    pub kind: AttachmentKind,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl AttachmentView {
    pub fn new(a: &Attachment, urls: &dyn MediaUrls) -> AttachmentView {
        AttachmentView {
            id: a.id.clone(),
            name: a.name.clone(),
            size: a.size,
            mime: a.mime.clone(),
            kind: a.kind,
            url: urls.url(&a.id, false),
            width: a.width,
            height: a.height,
            thumb_url: a.thumb.then(|| urls.url(&a.id, true)),
            duration_ms: a.duration_ms,
        }
    }

    /// The views of a message's attachments.
    pub fn all(list: &[Attachment], urls: &dyn MediaUrls) -> Vec<AttachmentView> {
        list.iter().map(|a| AttachmentView::new(a, urls)).collect()
    }
}

/// URLs that say nothing (`""`): for code that encodes frames of messages known to carry no
/// attachment, and for tests.
pub struct NoUrls;

impl MediaUrls for NoUrls {
    fn url(&self, _id: &str, _thumb: bool) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_views() {
        assert!(valid_upload_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_upload_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_upload_id("../../etc/passwd"));
        let a = Attachment {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "a.png".into(),
            size: 3,
            mime: "image/png".into(),
            kind: AttachmentKind::Image,
            width: Some(2),
            height: Some(1),
            duration_ms: None,
            thumb: true,
        };
        struct U;
        impl MediaUrls for U {
            fn url(&self, id: &str, thumb: bool) -> String {
                format!("/media/{id}{}", if thumb { "/thumb" } else { "" })
            }
        }
        let v = serde_json::to_value(AttachmentView::new(&a, &U)).unwrap();
        assert_eq!(v["thumb_url"], "/media/0123456789abcdef0123456789abcdef/thumb");
        assert!(v.get("duration_ms").is_none());
        let back: Attachment = postcard::from_bytes(&postcard::to_stdvec(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
