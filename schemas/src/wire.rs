//! Pre-encoded server-to-client WebSocket frames.
//!
//! Server frames are never masked, so a frame's bytes (header and payload) are the same for every
//! recipient: a room encodes a message once and shares the `Bytes` with all its subscribers.

use crate::client::ServerFrame;
use bytes::{BufMut, Bytes, BytesMut};

/// WebSocket opcodes the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Text = 0x1,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// One complete, final, unmasked WebSocket frame.
pub fn ws_frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out.freeze()
}

fn put_header(out: &mut BytesMut, opcode: Opcode, len: usize) {
    out.put_u8(0x80 | opcode as u8);
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// A server frame as JSON inside a complete text frame, encoded once.
pub fn encode_server_frame(frame: &ServerFrame) -> Bytes {
    // Serialize behind a reserved header slot, then write the real header in front: one allocation.
    let mut json = Vec::with_capacity(192);
    json.extend_from_slice(&[0u8; 10]);
    serde_json::to_writer(&mut json, frame).expect("server frames always serialize");
    let len = json.len() - 10;
    let mut head = BytesMut::with_capacity(10);
    put_header(&mut head, Opcode::Text, len);
    let start = 10 - head.len();
    json[start..10].copy_from_slice(&head);
    Bytes::from(json).slice(start..)
}

/// A close frame with a status code and a short reason.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(120)]);
    ws_frame(Opcode::Close, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ServerFrame;

    #[test]
    fn short_and_long_headers() {
        let f = ws_frame(Opcode::Text, b"hi");
        assert_eq!(&f[..], &[0x81, 2, b'h', b'i']);
        let big = vec![b'x'; 300];
        let f = ws_frame(Opcode::Text, &big);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44]);
        assert_eq!(f.len(), 304);
        let huge = vec![b'x'; 70_000];
        let f = ws_frame(Opcode::Text, &huge);
        assert_eq!(f[1], 127);
        assert_eq!(f.len(), 70_010);
    }

    #[test]
    fn encoded_server_frame_is_header_plus_json() {
        for frame in [ServerFrame::Pong, ServerFrame::Resync { room: crate::RoomId(1), head: 9 }] {
            let bytes = encode_server_frame(&frame);
            let json = serde_json::to_vec(&frame).unwrap();
            assert_eq!(bytes, ws_frame(Opcode::Text, &json));
        }
        let long = ServerFrame::error(crate::ErrorCode::TooLong, "x".repeat(500), None);
        let json = serde_json::to_vec(&long).unwrap();
        assert_eq!(encode_server_frame(&long), ws_frame(Opcode::Text, &json));
    }
}
