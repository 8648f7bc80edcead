//! The server side of RFC 6455 framing for what clients send on `/ws`, with no buffer held while
//! a connection is idle.
//!
//! fastwebsockets still performs the upgrade, but its read half keeps an 8 KiB buffer per
//! connection for the connection's whole life. This reader owns nothing between messages: each
//! read goes into a scratch array on the polling thread's stack, and only the bytes that arrived
//! are copied into a heap buffer, which is released as soon as a complete frame has been taken
//! out of it. It is poll-based, so the future of a pending read is a reference to the reader and
//! nothing more: an idle connection costs the `FrameReader` struct.
//!
//! What it enforces (a violation is a `ReadError`, and the connection must be closed):
//! client frames must be masked; no reserved bits (no extension is negotiated); known opcodes
//! only; control frames unfragmented and at most 125 bytes; continuations only inside a
//! fragmented message and no new data message inside one; a message (all its fragments) at most
//! `max_message` bytes, checked before its payload is read; text messages valid UTF-8; close
//! frames with either no body or a valid status code and a UTF-8 reason.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes one read may take from the socket (the scratch array lives on the stack, not in the
/// connection).
const READ_CHUNK: usize = 8 * 1024;
/// Longest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A complete message from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// A text message, already checked to be UTF-8.
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// A close frame and its status code, if it had one.
    Close(Option<u16>),
}

/// Why reading stopped. Every variant ends the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The peer closed the socket, it failed, or it ended inside a frame.
    Eof,
    /// A message larger than the limit (close with 1009).
    TooLarge,
    /// A text message or close reason that is not UTF-8 (close with 1007).
    InvalidUtf8,
    /// A framing violation (close with 1002).
    Protocol(&'static str),
}

/// Reads client messages from `io`, one at a time.
pub(crate) struct FrameReader<R> {
    io: R,
    /// Received bytes not yet consumed start at `pos`. Empty, with no allocation, between frames
    /// unless the client already sent part of the next one.
    buf: Vec<u8>,
    pos: usize,
    max_message: usize,
    /// Bytes (from `pos`) the frame being received needs in all.
    need: usize,
    /// The fragments so far of a fragmented message: whether it is text, and its payload.
    partial: Option<(bool, Vec<u8>)>,
}

/// One frame, unmasked.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader with nothing read yet (the tests' and the fuzz target's).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(io: R, max_message: usize) -> FrameReader<R> {
        FrameReader::with_buffered(io, max_message, &[])
    }

    /// A reader whose first bytes were already read from the socket (by the HTTP layer).
    pub(crate) fn with_buffered(io: R, max_message: usize, early: &[u8]) -> FrameReader<R> {
        FrameReader { io, buf: early.to_vec(), pos: 0, need: 2, max_message, partial: None }
    }

    /// The next complete message; fragments are joined and control frames between them returned
    /// as they come. Cancel-safe: everything read so far stays in the reader, so the future
    /// holds nothing but a reference to it.
    pub(crate) async fn read_message(&mut self) -> Result<Message, ReadError> {
        poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, ReadError>> {
        loop {
            match self.next_message() {
                Ok(Some(m)) => return Poll::Ready(Ok(m)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// A complete message out of the bytes already read, if they hold one (no socket read).
    pub(crate) fn next_message(&mut self) -> Result<Option<Message>, ReadError> {
        while let Some(frame) = self.next_frame()? {
            match frame.opcode {
                0x0 => {
                    let Some((_, so_far)) = self.partial.as_mut() else {
                        return Err(ReadError::Protocol("continuation frame outside a fragmented message"));
                    };
                    so_far.extend_from_slice(&frame.payload);
                    if frame.fin {
                        let (text, payload) = self.partial.take().expect("checked above");
                        return data_message(text, payload).map(Some);
                    }
                }
                0x1 | 0x2 => {
                    if self.partial.is_some() {
                        return Err(ReadError::Protocol("new message before the fragmented one ended"));
                    }
                    let text = frame.opcode == 0x1;
                    if frame.fin {
                        return data_message(text, frame.payload).map(Some);
                    }
                    self.partial = Some((text, frame.payload));
                }
                0x8 => return close_message(&frame.payload).map(Some),
                0x9 => return Ok(Some(Message::Ping(frame.payload))),
                0xA => return Ok(Some(Message::Pong)),
                _ => return Err(ReadError::Protocol("unknown opcode")),
            }
        }
        Ok(None)
    }

    /// Takes the next complete frame out of the buffer. `Ok(None)`: more bytes are needed, and
    /// `self.need` says how many (from `pos`). Header checks come before the payload is awaited.
    fn next_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let avail = &self.buf[self.pos..];
        if avail.len() < 2 {
            self.need = 2;
            return Ok(None);
        }
        let (b0, b1) = (avail[0], avail[1]);
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        if b0 & 0x70 != 0 {
            return Err(ReadError::Protocol("reserved bits set"));
        }
        if b1 & 0x80 == 0 {
            return Err(ReadError::Protocol("client frames must be masked"));
        }
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header = 2 + ext + 4;
        if avail.len() < header {
            self.need = header;
            return Ok(None);
        }
        let len = match ext {
            0 => u64::from(b1 & 0x7F),
            2 => u64::from(u16::from_be_bytes([avail[2], avail[3]])),
            _ => u64::from_be_bytes(avail[2..10].try_into().expect("8 bytes")),
        };
        if len >> 63 != 0 {
            return Err(ReadError::Protocol("payload length has its top bit set"));
        }
        let mask: [u8; 4] = avail[header - 4..header].try_into().expect("4 bytes");
        if opcode & 0x8 != 0 {
            if !fin {
                return Err(ReadError::Protocol("fragmented control frame"));
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ReadError::Protocol("control frame longer than 125 bytes"));
            }
        } else {
            // Checked before the payload is read: a client cannot make the server buffer more.
            let before = self.partial.as_ref().map_or(0, |(_, p)| p.len()) as u64;
            if before.saturating_add(len) > self.max_message as u64 {
                return Err(ReadError::TooLarge);
            }
        }
        let len = len as usize;
        if avail.len() < header + len {
            self.need = header + len;
            return Ok(None);
        }
        let start = self.pos + header;
        let end = start + len;
        let mut payload = if end == self.buf.len() && len * 2 >= end {
            // The frame is all that is buffered: keep its allocation and move the payload down.
            let mut all = std::mem::take(&mut self.buf);
            all.drain(..start);
            self.pos = 0;
            all
        } else {
            let p = self.buf[start..end].to_vec();
            self.pos = end;
            p
        };
        if self.pos == self.buf.len() {
            // Nothing of the next frame yet: hold no buffer while the connection is idle.
            self.buf = Vec::new();
            self.pos = 0;
        }
        unmask(&mut payload, mask);
        Ok(Some(Frame { fin, opcode, payload }))
    }

    /// Reads once from the socket into the buffer (at least one byte, or `Eof`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ReadError>> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // The scratch space is on this thread's stack for the length of one poll only.
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut rb = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Err(ReadError::Eof)),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Err(ReadError::Eof)),
            Poll::Ready(Ok(())) => {
                let filled = rb.filled();
                if self.buf.capacity() - self.buf.len() < filled.len() {
                    // Room for the rest of the frame at once when it is known to be long.
                    let want = self.need.saturating_sub(self.buf.len()).max(filled.len());
                    self.buf.reserve_exact(want);
                }
                self.buf.extend_from_slice(filled);
                Poll::Ready(Ok(()))
            }
        }
    }
}

fn data_message(text: bool, payload: Vec<u8>) -> Result<Message, ReadError> {
    if !text {
        return Ok(Message::Binary(payload));
    }
    if std::str::from_utf8(&payload).is_err() {
        return Err(ReadError::InvalidUtf8);
    }
    Ok(Message::Text(payload))
}

fn close_message(payload: &[u8]) -> Result<Message, ReadError> {
    match payload {
        [] => Ok(Message::Close(None)),
        [_] => Err(ReadError::Protocol("close frame with a one-byte body")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // RFC 6455 §7.4: codes a peer may send; 1004–1006 and 1015 are reserved.
            let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !allowed {
                return Err(ReadError::Protocol("close frame with an invalid status code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ReadError::InvalidUtf8);
            }
            Ok(Message::Close(Some(code)))
        }
    }
}

/// XORs the payload with the client's masking key, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = payload.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: `b0` is FIN/RSV/opcode, the payload is masked with `KEY`.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
        out
    }

    /// An `AsyncRead` that hands out at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = self.step.min(self.data.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn reader(bytes: Vec<u8>, step: usize, max: usize) -> FrameReader<Trickle> {
        FrameReader::new(Trickle { data: bytes, at: 0, step }, max)
    }

    async fn all(bytes: Vec<u8>, step: usize, max: usize) -> Vec<Result<Message, ReadError>> {
        let mut r = reader(bytes, step, max);
        let mut out = Vec::new();
        loop {
            let m = r.read_message().await;
            let end = m.is_err();
            out.push(m);
            if end {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn messages_of_every_length_whole_or_byte_by_byte() {
        let long = vec![b'y'; 300];
        let huge = vec![b'z'; 70_000];
        let mut bytes = frame(0x81, b"{\"type\":\"ping\"}");
        bytes.extend(frame(0x81, &long));
        bytes.extend(frame(0x82, &huge));
        bytes.extend(frame(0x89, b"hb"));
        bytes.extend(frame(0x8A, b""));
        bytes.extend(frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        for step in [1, 7, 4096, usize::MAX] {
            let got = all(bytes.clone(), step, 100_000).await;
            assert_eq!(
                got,
                vec![
                    Ok(Message::Text(b"{\"type\":\"ping\"}".to_vec())),
                    Ok(Message::Text(long.clone())),
                    Ok(Message::Binary(huge.clone())),
                    Ok(Message::Ping(b"hb".to_vec())),
                    Ok(Message::Pong),
                    Ok(Message::Close(Some(1000))),
                    Err(ReadError::Eof),
                ],
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn fragments_are_joined_around_control_frames() {
        let mut bytes = frame(0x01, b"hel");
        bytes.extend(frame(0x89, b"p"));
        bytes.extend(frame(0x00, b"lo "));
        bytes.extend(frame(0x80, "wörld".as_bytes()));
        bytes.extend(frame(0x88, b""));
        for step in [1, usize::MAX] {
            let got = all(bytes.clone(), step, 1000).await;
            assert_eq!(
                got,
                vec![
                    Ok(Message::Ping(b"p".to_vec())),
                    Ok(Message::Text("hello wörld".as_bytes().to_vec())),
                    Ok(Message::Close(None)),
                    Err(ReadError::Eof),
                ]
            );
        }
    }

    #[tokio::test]
    async fn no_buffer_is_held_between_frames() {
        let mut r = reader(frame(0x81, b"first").into_iter().chain(frame(0x81, b"second")).collect(), 3, 100);
        assert_eq!(r.read_message().await, Ok(Message::Text(b"first".to_vec())));
        assert_eq!(r.read_message().await, Ok(Message::Text(b"second".to_vec())));
        assert_eq!(r.buf.capacity(), 0);
        assert_eq!(r.read_message().await, Err(ReadError::Eof));
    }

    #[tokio::test]
    async fn bytes_read_before_the_reader_come_first() {
        // What the HTTP layer read past the upgrade request: a whole frame and half the next,
        // whose rest comes from the socket.
        let mut bytes = frame(0x81, b"early");
        bytes.extend(frame(0x81, b"split across"));
        let cut = frame(0x81, b"early").len() + 4;
        for step in [1, usize::MAX] {
            let rest = Trickle { data: bytes[cut..].to_vec(), at: 0, step };
            let mut r = FrameReader::with_buffered(rest, 100, &bytes[..cut]);
            assert_eq!(r.read_message().await, Ok(Message::Text(b"early".to_vec())));
            assert_eq!(r.read_message().await, Ok(Message::Text(b"split across".to_vec())));
            assert_eq!(r.read_message().await, Err(ReadError::Eof));
        }
    }

    #[tokio::test]
    async fn violations_are_refused() {
        let unmasked = vec![0x81, 2, b'h', b'i'];
        let mut fragmented_ping = frame(0x09, b"x");
        fragmented_ping[0] = 0x09;
        let cases: Vec<(Vec<u8>, ReadError)> = vec![
            (unmasked, ReadError::Protocol("client frames must be masked")),
            (frame(0xC1, b"x"), ReadError::Protocol("reserved bits set")),
            (frame(0x83, b"x"), ReadError::Protocol("unknown opcode")),
            (frame(0x8B, b"x"), ReadError::Protocol("unknown opcode")),
            (fragmented_ping, ReadError::Protocol("fragmented control frame")),
            (frame(0x89, &[0u8; 126]), ReadError::Protocol("control frame longer than 125 bytes")),
            (frame(0x80, b"x"), ReadError::Protocol("continuation frame outside a fragmented message")),
            (
                frame(0x01, b"a").into_iter().chain(frame(0x81, b"b")).collect(),
                ReadError::Protocol("new message before the fragmented one ended"),
            ),
            (frame(0x81, &[0xff, 0xfe]), ReadError::InvalidUtf8),
            (frame(0x88, &[0x03]), ReadError::Protocol("close frame with a one-byte body")),
            (frame(0x88, &[0x03, 0xed]), ReadError::Protocol("close frame with an invalid status code")),
            (frame(0x88, &[0x03, 0xe8, 0xff]), ReadError::InvalidUtf8),
            (frame(0x81, &[b'a'; 101]), ReadError::TooLarge),
            (frame(0x01, &[b'a'; 60]).into_iter().chain(frame(0x80, &[b'a'; 41])).collect(), ReadError::TooLarge),
            (frame(0x81, b"cut short")[..8].to_vec(), ReadError::Eof),
        ];
        for (bytes, want) in cases {
            assert_eq!(reader(bytes.clone(), usize::MAX, 100).read_message().await, Err(want), "{bytes:02x?}");
        }
        // 64-bit length with the top bit set; and a length over the limit is refused before any
        // payload arrives.
        let mut top = vec![0x82, 0x80 | 127];
        top.extend_from_slice(&(1u64 << 63).to_be_bytes());
        top.extend_from_slice(&KEY);
        assert_eq!(
            reader(top, usize::MAX, 100).read_message().await,
            Err(ReadError::Protocol("payload length has its top bit set"))
        );
        let mut big = vec![0x82, 0x80 | 127];
        big.extend_from_slice(&(1u64 << 40).to_be_bytes());
        big.extend_from_slice(&KEY);
        assert_eq!(reader(big, usize::MAX, 100).read_message().await, Err(ReadError::TooLarge));
        // Exactly the limit is fine.
        assert_eq!(
            reader(frame(0x81, &[b'a'; 100]), usize::MAX, 100).read_message().await,
            Ok(Message::Text(vec![b'a'; 100]))
        );
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, KEY);
            let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]).collect();
            assert_eq!(fast, slow);
        }
    }
}
