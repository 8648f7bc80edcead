//! What an upload is, read from its first bytes (`infer`), never from its name or the request's
//! `Content-Type`: the allow-list of kinds (images the node can decode, PDF, plain text, office
//! documents, archives, audio). Everything else, programs first, is refused.

use confab_schemas::AttachmentKind;

/// Bytes read before deciding (what every matcher of the allow-list needs; a shorter file is
/// judged on all it has).
pub(crate) const SNIFF_BYTES: usize = 8192;

/// The type of an accepted upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sniffed {
    pub(crate) mime: &'static str,
    pub(crate) kind: AttachmentKind,
}

/// Types accepted, by what `infer` names them, with the type they are stored and served as.
const ALLOWED: &[(&str, &str, AttachmentKind)] = &[
    ("image/jpeg", "image/jpeg", AttachmentKind::Image),
    ("image/png", "image/png", AttachmentKind::Image),
    ("image/gif", "image/gif", AttachmentKind::Image),
    ("image/webp", "image/webp", AttachmentKind::Image),
    ("application/pdf", "application/pdf", AttachmentKind::File),
    ("audio/mpeg", "audio/mpeg", AttachmentKind::Audio),
    ("audio/m4a", "audio/mp4", AttachmentKind::Audio),
    ("audio/opus", "audio/ogg", AttachmentKind::Audio),
    ("audio/ogg", "audio/ogg", AttachmentKind::Audio),
    ("audio/x-flac", "audio/flac", AttachmentKind::Audio),
    ("audio/x-wav", "audio/wav", AttachmentKind::Audio),
    ("audio/aac", "audio/aac", AttachmentKind::Audio),
    // What MediaRecorder writes in Chromium: Opus in WebM (an audio-only WebM is still `video/`
    // to `infer`, which reads only the container's header).
    ("video/webm", "audio/webm", AttachmentKind::Audio),
    ("application/msword", "application/msword", AttachmentKind::File),
    ("application/vnd.ms-excel", "application/vnd.ms-excel", AttachmentKind::File),
    ("application/vnd.ms-powerpoint", "application/vnd.ms-powerpoint", AttachmentKind::File),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        AttachmentKind::File,
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        AttachmentKind::File,
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        AttachmentKind::File,
    ),
    ("application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.text", AttachmentKind::File),
    (
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.spreadsheet",
        AttachmentKind::File,
    ),
    (
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.oasis.opendocument.presentation",
        AttachmentKind::File,
    ),
    ("application/rtf", "application/rtf", AttachmentKind::File),
    ("application/epub+zip", "application/epub+zip", AttachmentKind::File),
    ("application/zip", "application/zip", AttachmentKind::File),
    ("application/x-tar", "application/x-tar", AttachmentKind::File),
    ("application/gzip", "application/gzip", AttachmentKind::File),
    ("application/x-bzip2", "application/x-bzip2", AttachmentKind::File),
    ("application/x-7z-compressed", "application/x-7z-compressed", AttachmentKind::File),
    ("application/x-xz", "application/x-xz", AttachmentKind::File),
    ("application/vnd.rar", "application/vnd.rar", AttachmentKind::File),
    ("application/zstd", "application/zstd", AttachmentKind::File),
];

/// Plain text: what no matcher names, and reads as UTF-8 without control characters.
const TEXT: Sniffed = Sniffed { mime: "text/plain; charset=utf-8", kind: AttachmentKind::File };

/// The type of a file that starts with `head` (all of it when `complete`), or `None` when the
/// allow-list refuses it.
pub(crate) fn sniff(head: &[u8], complete: bool) -> Option<Sniffed> {
    if head.is_empty() {
        return None;
    }
    match infer::get(head) {
        Some(t) => {
            ALLOWED.iter().find(|(name, ..)| *name == t.mime_type()).map(|&(_, mime, kind)| Sniffed { mime, kind })
        }
        None => is_text(head, complete).then_some(TEXT),
    }
}

/// UTF-8 (a character cut at the end of an incomplete head is fine) without NUL or control
/// characters other than tab, line feed, form feed and carriage return.
fn is_text(head: &[u8], complete: bool) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A multi-byte character cut by the end of the head: the rest is judged without it.
        Err(e) if !complete && e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    !valid.is_empty() && valid.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bytes_not_the_name() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png, false).map(|s| s.kind), Some(AttachmentKind::Image));
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
        assert_eq!(sniff(elf, false), None, "a program is refused");
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0", false), None, "a Windows program too");
        assert_eq!(sniff(b"%PDF-1.7\n", false).map(|s| s.mime), Some("application/pdf"));
        assert_eq!(sniff("h\u{e9}llo\nworld\n".as_bytes(), true), Some(TEXT));
        let cut = "caf\u{e9}".as_bytes();
        assert_eq!(sniff(&cut[..4], false), Some(TEXT), "a character cut by the head");
        assert_eq!(sniff(&cut[..4], true), None, "but not at the end of the file");
        assert_eq!(sniff(b"text\0with nul", true), None);
        assert_eq!(sniff(b"", true), None);
        assert_eq!(sniff(b"<script>\x1b[0m", true), None);
    }
}
