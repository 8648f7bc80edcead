//! The WebSocket frame reader (gateway/src/ws_read.rs, hand-written to hold no buffer while a
//! connection is idle), fed a client's bytes in chunks of sizes the input chooses, with reads
//! that are sometimes not ready. Oracle: a plain reference decoder of RFC 6455 written from the
//! RFC over the whole input at once. The reader must return the same messages and stop with the
//! same error, however the bytes are cut.
//!
//! `ws_read.rs` is compiled into this target from its source (`#[path]`): the gateway crate keeps
//! the reader private, and building the whole gateway under the sanitizer for one module that
//! needs only tokio's I/O traits would cost minutes of every CI run.
//!
//! Input: byte 0 picks the message limit (0..=255 bytes, so `TooLarge` is reachable), bytes
//! 1..=8 are the chunk sizes (cycled; 0 means "not ready this time"), the rest is the stream.
#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../gateway/src/ws_read.rs"]
mod ws_read;

use libfuzzer_sys::fuzz_target;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};
use ws_read::{FrameReader, Message, ReadError};

/// A socket that hands out `data` in chunks of the given sizes; a size 0 is one `Pending`
/// (never two in a row).
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    turn: usize,
    /// The last poll was answered `Pending` (the next one always makes progress).
    waited: bool,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let size = if self.sizes.is_empty() { usize::MAX } else { self.sizes[self.turn % self.sizes.len()] as usize };
        self.turn += 1;
        if size == 0 && !self.data.is_empty() && !self.waited {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        let n = size.max(1).min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// What the reader returned, until its first error.
fn read_all(data: &[u8], sizes: &[u8], max: usize) -> (Vec<Message>, ReadError) {
    let mut reader = FrameReader::new(Chunked { data, sizes, turn: 0, waited: false }, max);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        let mut fut = std::pin::pin!(reader.read_message());
        let res = loop {
            if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                break r;
            }
        };
        match res {
            Ok(m) => out.push(m),
            Err(e) => return (out, e),
        }
    }
}

/// RFC 6455 §5 for frames a client sends, over the whole stream at once.
fn reference(mut data: &[u8], max: usize) -> (Vec<Message>, ReadError) {
    let mut out = Vec::new();
    let mut partial: Option<(bool, Vec<u8>)> = None;
    loop {
        if data.len() < 2 {
            return (out, ReadError::Eof);
        }
        let (b0, b1) = (data[0], data[1]);
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
        if b0 & 0x70 != 0 {
            return (out, ReadError::Protocol("reserved bits set"));
        }
        if b1 & 0x80 == 0 {
            return (out, ReadError::Protocol("client frames must be masked"));
        }
        let (len, at) = match b1 & 0x7F {
            126 if data.len() >= 8 => (u16::from_be_bytes([data[2], data[3]]) as u64, 4),
            127 if data.len() >= 14 => (u64::from_be_bytes(data[2..10].try_into().unwrap()), 10),
            126 | 127 => return (out, ReadError::Eof),
            n if data.len() >= 6 => (n as u64, 2),
            _ => return (out, ReadError::Eof),
        };
        if len >= 1 << 63 {
            return (out, ReadError::Protocol("payload length has its top bit set"));
        }
        let control = opcode >= 8;
        if control && !fin {
            return (out, ReadError::Protocol("fragmented control frame"));
        }
        if control && len > 125 {
            return (out, ReadError::Protocol("control frame longer than 125 bytes"));
        }
        if !control && partial.as_ref().map_or(0, |(_, p)| p.len() as u64) + len > max as u64 {
            return (out, ReadError::TooLarge);
        }
        let mask = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        let body = at + 4;
        if ((data.len() - body) as u64) < len {
            return (out, ReadError::Eof);
        }
        let payload: Vec<u8> =
            data[body..body + len as usize].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        data = &data[body + len as usize..];
        let whole = match opcode {
            0 => match partial.as_mut() {
                None => return (out, ReadError::Protocol("continuation frame outside a fragmented message")),
                Some((_, so_far)) => {
                    so_far.extend_from_slice(&payload);
                    if fin { partial.take() } else { None }
                }
            },
            1 | 2 if partial.is_some() => {
                return (out, ReadError::Protocol("new message before the fragmented one ended"));
            }
            1 | 2 if fin => Some((opcode == 1, payload)),
            1 | 2 => {
                partial = Some((opcode == 1, payload));
                None
            }
            8 => {
                let m = match payload.len() {
                    0 => Message::Close(None),
                    1 => return (out, ReadError::Protocol("close frame with a one-byte body")),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !(1000..=1003).contains(&code)
                            && !(1007..=1014).contains(&code)
                            && !(3000..=4999).contains(&code)
                        {
                            return (out, ReadError::Protocol("close frame with an invalid status code"));
                        }
                        if std::str::from_utf8(&payload[2..]).is_err() {
                            return (out, ReadError::InvalidUtf8);
                        }
                        Message::Close(Some(code))
                    }
                };
                out.push(m);
                None
            }
            9 => {
                out.push(Message::Ping(payload));
                None
            }
            10 => {
                out.push(Message::Pong);
                None
            }
            _ => return (out, ReadError::Protocol("unknown opcode")),
        };
        if let Some((text, payload)) = whole {
            if text && std::str::from_utf8(&payload).is_err() {
                return (out, ReadError::InvalidUtf8);
            }
            out.push(if text { Message::Text(payload) } else { Message::Binary(payload) });
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&max, rest)) = input.split_first() else { return };
    let (sizes, data) = rest.split_at(rest.len().min(8));
    let expected = reference(data, max as usize);
    assert_eq!(read_all(data, sizes, max as usize), expected, "chunks {sizes:?}");
    assert_eq!(read_all(data, &[], max as usize), expected, "in one read");
});
