//! What a benchmark message carries, and how the receiving side reads server frames without a
//! JSON parser: `message` frames are scanned for `"seq":` and `"body":"bench|`, `ack` frames for
//! `"cid":"` (with `memchr`'s SIMD substring search: at 2M deliveries a second the scan was a
//! third of the generator's core with a byte-by-byte one). Only error frames (rare) go through
//! serde_json.

use memchr::memmem::Finder;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The marker a benchmark body starts with, as it appears inside a server `message` frame.
pub(crate) const BODY_MARKER: &[u8] = b"\"body\":\"bench|";

/// One clock for the whole process: the monotonic clock, expressed as Unix nanoseconds. Senders
/// and receivers live in this process, so send and receive times compare directly.
fn anchor() -> &'static (Instant, u64) {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos() as u64;
        (Instant::now(), unix)
    })
}

/// Now, in Unix nanoseconds (monotonic within this process).
pub(crate) fn now_nanos() -> u64 {
    instant_nanos(Instant::now())
}

/// An `Instant` in Unix nanoseconds.
pub(crate) fn instant_nanos(t: Instant) -> u64 {
    let (base, unix) = *anchor();
    match t.checked_duration_since(base) {
        Some(d) => unix + d.as_nanos() as u64,
        None => unix.saturating_sub(base.duration_since(t).as_nanos() as u64),
    }
}

/// The client id of a send: unique per sender (global index) and counter.
pub(crate) fn cid(sender: u32, counter: u64) -> String {
    format!("{sender}.{counter}")
}

/// Parses a cid written by [`cid`].
pub(crate) fn parse_cid(cid: &[u8]) -> Option<(u32, u64)> {
    let dot = cid.iter().position(|&b| b == b'.')?;
    let (s, rest) = (&cid[..dot], &cid[dot + 1..]);
    let (sender, used) = parse_u64(s)?;
    let (counter, used2) = parse_u64(rest)?;
    if used != s.len() || used2 != rest.len() || sender > u32::MAX as u64 {
        return None;
    }
    Some((sender as u32, counter))
}

/// The body of a benchmark message: `bench|<sender>|<counter>|<send_unix_nanos>`, then, when
/// `pad` is above the length of that, `|` and filler up to `pad` bytes.
pub(crate) fn encode_body(sender: u32, counter: u64, sent_nanos: u64, pad: usize) -> String {
    let mut s = format!("bench|{sender}|{counter}|{sent_nanos}");
    if pad > s.len() + 1 {
        s.push('|');
        while s.len() < pad {
            s.push('x');
        }
    }
    s
}

/// The complete `send` frame of one message.
pub(crate) fn send_frame(room: i64, sender: u32, counter: u64, sent_nanos: u64, pad: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"send","room":{room},"cid":"{}","body":"{}"}}"#,
        cid(sender, counter),
        encode_body(sender, counter, sent_nanos, pad)
    )
    .into_bytes()
}

/// What a received benchmark message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BenchMsg {
    pub seq: u64,
    pub sender: u32,
    pub counter: u64,
    pub sent_nanos: u64,
}

/// The kinds of server frame the benchmark tells apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scanned<'a> {
    /// A `message` frame with a benchmark body.
    Bench(BenchMsg),
    /// A `message` frame with some other body.
    OtherMessage,
    /// An `ack` with its cid.
    Ack(&'a [u8]),
    Error,
    Reconnect,
    Other,
}

/// Classifies one server text frame by its prefix (the server writes `type` first).
pub(crate) fn scan(payload: &[u8]) -> Scanned<'_> {
    if payload.starts_with(b"{\"type\":\"message\"") {
        return match parse_message(payload) {
            Some(m) => Scanned::Bench(m),
            None => Scanned::OtherMessage,
        };
    }
    if payload.starts_with(b"{\"type\":\"ack\"") {
        return match CID.find(payload) {
            Some(at) => {
                let rest = &payload[at + 7..];
                let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
                Scanned::Ack(&rest[..end])
            }
            None => Scanned::Other,
        };
    }
    if payload.starts_with(b"{\"type\":\"error\"") {
        return Scanned::Error;
    }
    if payload.starts_with(b"{\"type\":\"reconnect\"") {
        return Scanned::Reconnect;
    }
    Scanned::Other
}

/// Reads seq and the benchmark body out of a `message` frame.
pub(crate) fn parse_message(payload: &[u8]) -> Option<BenchMsg> {
    let at = SEQ.find(payload)?;
    let (seq, _) = parse_u64(&payload[at + 6..])?;
    let at = BODY.find(payload)?;
    let (sender, counter, sent_nanos) = parse_body_fields(&payload[at + BODY_MARKER.len()..])?;
    Some(BenchMsg { seq, sender: sender as u32, counter, sent_nanos })
}

/// Parses `<sender>|<counter>|<nanos>` (what follows `bench|`).
pub(crate) fn parse_body_fields(s: &[u8]) -> Option<(u64, u64, u64)> {
    let (sender, n1) = parse_u64(s)?;
    let s = s.get(n1..)?.strip_prefix(b"|")?;
    let (counter, n2) = parse_u64(s)?;
    let s = s.get(n2..)?.strip_prefix(b"|")?;
    let (nanos, _) = parse_u64(s)?;
    if sender > u32::MAX as u64 {
        return None;
    }
    Some((sender, counter, nanos))
}

/// Parses a decimal number at the start of `s`; returns it and the digits used.
pub(crate) fn parse_u64(s: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut n = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        n += 1;
    }
    if n == 0 { None } else { Some((v, n)) }
}

/// The first position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"seq\":"));
static BODY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(BODY_MARKER));
static CID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"cid\":\""));

/// The code and ref of an error frame (serde_json: errors are rare).
pub(crate) fn parse_error(payload: &[u8]) -> (String, Option<String>) {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => (
            v.get("code").and_then(|c| c.as_str()).unwrap_or("?").to_owned(),
            v.get("ref").and_then(|c| c.as_str()).map(str::to_owned),
        ),
        Err(_) => ("unparsable".to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_roundtrip() {
        let b = encode_body(7, 42, 1_700_000_000_123_456_789, 0);
        assert_eq!(b, "bench|7|42|1700000000123456789");
        assert_eq!(parse_body_fields(&b.as_bytes()[6..]), Some((7, 42, 1_700_000_000_123_456_789)));
        let padded = encode_body(1, 2, 3, 64);
        assert_eq!(padded.len(), 64);
        assert_eq!(parse_body_fields(&padded.as_bytes()[6..]), Some((1, 2, 3)));
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(parse_body_fields(b"x|1|2"), None);
        assert_eq!(parse_body_fields(b"1|2"), None);
        assert_eq!(parse_body_fields(b"1|2|"), None);
        assert_eq!(parse_body_fields(b"99999999999999999999999|2|3"), None);
        assert_eq!(parse_body_fields(b"5000000000|2|3"), None);
    }

    #[test]
    fn scans_a_server_message_frame() {
        let f = br#"{"type":"message","room":3,"seq":17,"id":99,"from":{"id":4,"username":"b1_0"},"body":"bench|5|6|123456","ts":1,"reply_to":null}"#;
        assert_eq!(scan(f), Scanned::Bench(BenchMsg { seq: 17, sender: 5, counter: 6, sent_nanos: 123456 }));
        let other = br#"{"type":"message","room":3,"seq":17,"id":99,"from":{"id":4,"username":"a"},"body":"hello","ts":1,"reply_to":null}"#;
        assert_eq!(scan(other), Scanned::OtherMessage);
    }

    #[test]
    fn scans_acks_errors_and_the_rest() {
        let a = br#"{"type":"ack","cid":"12.345","room":1,"seq":2,"id":3,"ts":4}"#;
        assert_eq!(scan(a), Scanned::Ack(b"12.345"));
        assert_eq!(parse_cid(b"12.345"), Some((12, 345)));
        assert_eq!(parse_cid(b"12.x"), None);
        assert_eq!(parse_cid(b"12"), None);
        let e = br#"{"type":"error","code":"overloaded","message":"busy","ref":"1.2"}"#;
        assert_eq!(scan(e), Scanned::Error);
        assert_eq!(parse_error(e), ("overloaded".to_owned(), Some("1.2".to_owned())));
        assert_eq!(scan(br#"{"type":"presence","room":1}"#), Scanned::Other);
        assert_eq!(scan(br#"{"type":"reconnect","reason":"x","resume":{}}"#), Scanned::Reconnect);
    }

    #[test]
    fn send_frame_is_json() {
        let f = send_frame(9, 3, 4, 5, 0);
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["type"], "send");
        assert_eq!(v["room"], 9);
        assert_eq!(v["cid"], "3.4");
        assert_eq!(v["body"], "bench|3|4|5");
    }

    #[test]
    fn find_works() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"aaa", b"a"), Some(0));
        assert_eq!(find(b"xyz", b"z"), Some(2));
    }

    #[test]
    fn clock_is_monotonic_unix() {
        let a = now_nanos();
        let b = now_nanos();
        assert!(b >= a);
        assert!(a > 1_600_000_000_000_000_000);
    }
}
