//! The duration of a recording, read from its container: Ogg (Opus or Vorbis: the last page's
//! granule position) and WebM (the `Duration` of its `Info`, or, as MediaRecorder in Chromium
//! writes live WebM without one, the timestamp of its last block). Other formats get `None`, and
//! a voice note then keeps the duration its client measured, clamped.

/// The duration in milliseconds of the Ogg or WebM recording `data`, if it can be read.
pub(crate) fn duration_ms(data: &[u8]) -> Option<u64> {
    if data.starts_with(b"OggS") {
        ogg(data)
    } else if data.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        webm(data)
    } else {
        None
    }
}

fn ogg(data: &[u8]) -> Option<u64> {
    // The first page holds the codec's identification header: its sample rate, and for Opus the
    // samples to skip at the start (granule positions count at 48 kHz for Opus).
    let first = data.get(28..)?;
    let (rate, skip) = if first.starts_with(b"OpusHead") {
        (48_000u64, u64::from(u16::from_le_bytes([*first.get(10)?, *first.get(11)?])))
    } else if first.starts_with(b"\x01vorbis") {
        (u64::from(u32::from_le_bytes(first.get(12..16)?.try_into().ok()?)), 0)
    } else {
        return None;
    };
    // The last page's granule position: the samples of the whole stream.
    let last = data.windows(4).rposition(|w| w == b"OggS")?;
    let granule = u64::from_le_bytes(data.get(last + 6..last + 14)?.try_into().ok()?);
    if rate == 0 || granule == u64::MAX {
        return None;
    }
    Some(granule.saturating_sub(skip) * 1000 / rate)
}

const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;
const BLOCK_GROUP: u32 = 0xA0;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const CLUSTER_TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK: u32 = 0xA1;

/// An EBML element id (its marker bits kept) and its length in bytes.
fn ebml_id(d: &[u8]) -> Option<(u32, usize)> {
    let first = *d.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = d.get(..len)?;
    Some((bytes.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)), len))
}

/// An EBML size (`None` inside: unknown) and its length in bytes.
fn ebml_size(d: &[u8]) -> Option<(Option<u64>, usize)> {
    let first = *d.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = d.get(..len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let mut v = u64::from(first & mask);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    let unknown = v == (1u64 << (7 * len)) - 1;
    Some((if unknown { None } else { Some(v) }, len))
}

fn uint(d: &[u8]) -> u64 {
    d.iter().take(8).fold(0, |v, b| (v << 8) | u64::from(*b))
}

fn webm(data: &[u8]) -> Option<u64> {
    let mut scale_ns: u64 = 1_000_000;
    let mut declared: Option<f64> = None;
    let mut cluster_tc: u64 = 0;
    let mut last_tc: Option<u64> = None;
    let mut pos = 0usize;
    // Elements in order: master elements (whose size may be unknown in live WebM) are entered,
    // every other element is skipped by its size.
    while pos < data.len() {
        let Some((id, id_len)) = ebml_id(&data[pos..]) else { break };
        let Some((size, size_len)) = ebml_size(&data[pos + id_len..]) else { break };
        let body = pos + id_len + size_len;
        if matches!(id, SEGMENT | CLUSTER | BLOCK_GROUP | INFO) {
            pos = body;
            continue;
        }
        let Some(size) = size else { break };
        let end = body.saturating_add(size as usize);
        let Some(value) = data.get(body..end.min(data.len())) else { break };
        match id {
            TIMECODE_SCALE => scale_ns = uint(value).max(1),
            DURATION => {
                declared = match value.len() {
                    4 => Some(f64::from(f32::from_be_bytes(value.try_into().ok()?))),
                    8 => Some(f64::from_be_bytes(value.try_into().ok()?)),
                    _ => None,
                }
            }
            CLUSTER_TIMECODE => cluster_tc = uint(value),
            SIMPLE_BLOCK | BLOCK => {
                // Track number (a size-like varint), then a signed 16-bit relative timecode.
                if let Some((_, n)) = ebml_size(value)
                    && let Some(rel) = value.get(n..n + 2)
                {
                    let rel = i64::from(i16::from_be_bytes([rel[0], rel[1]]));
                    let tc = (cluster_tc as i64 + rel).max(0) as u64;
                    last_tc = Some(last_tc.map_or(tc, |l| l.max(tc)));
                }
            }
            _ => {}
        }
        pos = end;
    }
    if let Some(d) = declared.filter(|d| d.is_finite() && *d > 0.0) {
        return Some((d * scale_ns as f64 / 1e6) as u64);
    }
    last_tc.map(|tc| tc.saturating_mul(scale_ns) / 1_000_000)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A live WebM (unknown sizes, no `Duration`) whose last block is at `ms` milliseconds.
    pub(crate) fn webm_live(ms: u64) -> Vec<u8> {
        let mut out = vec![0x1a, 0x45, 0xdf, 0xa3, 0x9f];
        out.extend([0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81, 0x08]);
        out.extend([0x42, 0x82, 0x84]);
        out.extend(b"webm");
        out.extend([0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02]);
        out.extend([0x18, 0x53, 0x80, 0x67, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        out.extend([0x15, 0x49, 0xa9, 0x66, 0x87, 0x2a, 0xd7, 0xb1, 0x83, 0x0f, 0x42, 0x40]);
        let clusters = [0u64, ms.saturating_sub(ms % 1000).min(ms)];
        for (i, tc) in clusters.iter().enumerate() {
            out.extend([0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
            out.extend([0xe7, 0x88]);
            out.extend(tc.to_be_bytes());
            let rel = if i == 0 { 0 } else { (ms - tc) as i16 };
            out.extend([0xa3, 0x88, 0x81]);
            out.extend(rel.to_be_bytes());
            out.extend([0x80, 0xfc, 0xfc, 0xfc, 0xfc]);
        }
        out
    }

    #[test]
    fn reads_live_webm() {
        // Ogg Opus is read in tests/tests/uploads.rs.
        assert_eq!(duration_ms(&webm_live(3480)), Some(3480));
        assert_eq!(duration_ms(b"ID3\x03\0"), None);
        assert_eq!(duration_ms(b"OggS"), None);
    }
}
