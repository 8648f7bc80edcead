//! The socket under an upgraded WebSocket, as a read side and a write side.
//!
//! Plain TCP is taken back out of hyper's upgraded connection and split into its own halves: the
//! write path (every delivery) then goes straight to the socket, with no lock shared with the
//! reader and no dynamic dispatch. Any other transport (TLS) stays behind hyper's stream, split
//! with `tokio::io::split`.

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

pub(crate) enum ReadSide {
    Tcp(OwnedReadHalf),
    Other(ReadHalf<TokioIo<Upgraded>>),
}

pub(crate) enum WriteSide {
    Tcp(OwnedWriteHalf),
    Other(WriteHalf<TokioIo<Upgraded>>),
}

/// Splits an upgraded connection; the bytes are what hyper had read past the upgrade request
/// (the client's first frames, if it sent them at once), to be read before the socket.
pub(crate) fn split(io: TokioIo<Upgraded>) -> (ReadSide, WriteSide, Bytes) {
    match io.into_inner().downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (r, w) = parts.io.into_inner().into_split();
            (ReadSide::Tcp(r), WriteSide::Tcp(w), parts.read_buf)
        }
        Err(upgraded) => {
            let (r, w) = tokio::io::split(TokioIo::new(upgraded));
            (ReadSide::Other(r), WriteSide::Other(w), Bytes::new())
        }
    }
}

impl AsyncRead for ReadSide {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadSide::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadSide::Other(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteSide::Other(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Other(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Other(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
