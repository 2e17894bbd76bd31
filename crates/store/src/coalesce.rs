//! [`Coalescing`]: a connection wrapper that turns the many small writes of one HTTP/2 flush into
//! one `write` system call.
//!
//! Why: h2 (the HTTP/2 layer under tonic) does not copy a DATA frame of 256 bytes or more into its
//! write buffer when the connection supports vectored writes; it chains the payload after the
//! buffer and must flush before it can take the next frame. A gRPC message that big (a watch event
//! with a 256-byte value, a small Range response) therefore cost one `writev` of its own: ~0.7 per
//! delivered event with 1,000 watchers, a third of the store's CPU. Reporting non-vectored I/O
//! raises h2's threshold to 1 KiB, so such frames are copied and flushed together; and buffering
//! here (until h2's flush, which it always ends with) merges what h2 still writes piecewise (a
//! frame header, then a large payload) into one call. Big writes that find the buffer empty go
//! straight to the socket, uncopied.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Bytes collected before they are written out even without a flush.
const BUFFER: usize = 64 * 1024;
/// A write at least this big is not copied when nothing is buffered.
const DIRECT: usize = 16 * 1024;

/// An I/O stream whose writes are collected until flushed (see the module docs).
pub struct Coalescing<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
}

impl<T> Coalescing<T> {
    pub fn new(inner: T) -> Coalescing<T> {
        Coalescing {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalescing<T> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > BUFFER {
            ready!(this.poll_drain(cx))?;
        }
        if this.buf.is_empty() && data.len() >= DIRECT {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Not vectored, on purpose: see the module docs.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for Coalescing<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    /// Small writes are held until the flush and then arrive whole and in order; a big write
    /// that finds nothing buffered goes straight through.
    #[tokio::test]
    async fn writes_arrive_in_order_after_the_flush() -> io::Result<()> {
        let (near, mut far) = duplex(1 << 20);
        let mut io = Coalescing::new(near);
        io.write_all(b"head").await?;
        io.write_all(b"-payload").await?;
        let mut peek = [0u8; 1];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), far.read(&mut peek)).await;
        assert!(early.is_err(), "bytes left before the flush");
        io.flush().await?;
        let mut got = vec![0u8; 12];
        far.read_exact(&mut got).await?;
        assert_eq!(got, b"head-payload");

        let big = vec![7u8; DIRECT];
        io.write_all(&big).await?;
        assert!(
            io.buf.is_empty(),
            "a big write into an empty buffer was copied"
        );
        let mut got = vec![0u8; DIRECT];
        far.read_exact(&mut got).await?;
        assert_eq!(got, big);
        Ok(())
    }

    /// More than the buffer holds is written out as it fills, nothing lost or reordered.
    #[tokio::test]
    async fn overflowing_the_buffer_keeps_every_byte() -> io::Result<()> {
        let (near, mut far) = duplex(1 << 22);
        let mut io = Coalescing::new(near);
        let chunk: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        for _ in 0..200 {
            io.write_all(&chunk).await?;
        }
        io.shutdown().await?;
        let mut got = Vec::new();
        far.read_to_end(&mut got).await?;
        assert_eq!(got.len(), 200 * chunk.len());
        assert!(got.chunks(chunk.len()).all(|c| c == chunk.as_slice()));
        Ok(())
    }
}
