//! Forwarding one direction of a TCP connection, adapting to the traffic:
//!
//! * **Small messages** (requests, replies, interactive traffic) are read into a small buffer and
//!   written out: two cheap syscalls. A read that returns less than the buffer proves the socket
//!   drained, so tokio clears its readiness without the extra read that would only say `EAGAIN`
//!   (`splice(2)` cannot tell that: it also stops short when the pipe is out of slots).
//! * **Bulk transfers**: once a read fills the buffer, the direction switches to `splice(2)`
//!   socket → pipe → socket, so payload never enters userspace. A splice that moves less than
//!   the small buffer switches back.
//!
//! Pipes come from a bounded [`PipePool`]: a connection that goes bulk costs no `pipe2`/`close`
//! syscalls once the pool is warm, and a connection that never does never holds one. HAProxy's
//! `splice-auto` makes the same choice (splice only for large transfers).
//!
//! Pipes keep the default capacity (64 KiB, 16 pages): 256 KiB pipes measured no lower CPU per
//! GB (the cost is the kernel's TCP work, docs/BENCHMARKS.md), and every pipe page counts
//! against the user's `fs.pipe-user-pages-soft` (past it, every pipe of that user, in any
//! program, shrinks to 2 pages), so neither the pipes nor the pool are made bigger than needed.
//!
//! nix's `splice` is a safe wrapper; tokio's readiness (`readable`/`writable` + `try_io`) drives
//! the non-blocking calls.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use nix::unistd::pipe2;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};

/// The small-message buffer of one direction (tokio's `copy` uses the same size). It lives in
/// the connection's task, so it costs no allocation of its own.
pub const SMALL_BUFFER: usize = 8 * 1024;
/// Bytes asked of one splice: a default pipe's capacity (the kernel moves less when the pipe runs
/// out of slots first, which is fine).
pub const PIPE_SIZE: usize = 64 * 1024;
/// Idle pipes kept for reuse (two file descriptors and up to 16 pages each); more are closed when
/// released.
pub const PIPE_POOL_SIZE: usize = 16;

/// When either direction of a connection last moved bytes (ms since `start`), for idle timeouts.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity::starting_now())
    }

    /// An `Activity` to embed (no allocation).
    pub fn starting_now() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long nothing has moved.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has moved for `timeout`.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle).await;
        }
    }
}

/// One pipe: what `splice(2)` moves socket data through.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        Ok(Pipe {
            read,
            write,
            capacity: PIPE_SIZE,
        })
    }
}

/// Idle pipes, bounded by [`PIPE_POOL_SIZE`].
#[derive(Debug, Default)]
pub struct PipePool {
    idle: Mutex<Vec<Pipe>>,
}

impl PipePool {
    pub fn new() -> PipePool {
        PipePool::default()
    }

    fn take(&self) -> io::Result<LeasedPipe<'_>> {
        let pipe = match self.idle.lock().pop() {
            Some(pipe) => pipe,
            None => Pipe::new()?,
        };
        Ok(LeasedPipe {
            pool: self,
            pipe: Some(pipe),
            pending: 0,
        })
    }

    /// Pipes waiting for reuse.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

/// A pipe in use; back to the pool when dropped empty, closed when bytes are stranded in it
/// (the connection failed mid-transfer) or the pool is full.
struct LeasedPipe<'a> {
    pool: &'a PipePool,
    pipe: Option<Pipe>,
    /// Bytes in the pipe not yet spliced out.
    pending: usize,
}

impl Drop for LeasedPipe<'_> {
    fn drop(&mut self) {
        if self.pending == 0
            && let Some(pipe) = self.pipe.take()
        {
            let mut idle = self.pool.idle.lock();
            if idle.len() < PIPE_POOL_SIZE {
                idle.push(pipe);
            }
        }
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

/// Moves everything `from` sends into `to` until `from` reaches end of stream, then half-closes
/// `to` (so the peer sees the EOF and the other direction can finish). Returns bytes moved.
pub async fn forward(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    pipes: &PipePool,
    activity: &Activity,
    bytes: &Counter,
) -> io::Result<u64> {
    let mut buf = [0u8; SMALL_BUFFER];
    let mut pipe: Option<LeasedPipe<'_>> = None;
    let mut total = 0u64;
    'copy: loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
        bytes.inc_by(n as u64);
        activity.touch();
        if n < buf.len() {
            continue;
        }
        // A full buffer: more is likely waiting. Splice until the flow thins out again.
        let pipe = match &mut pipe {
            Some(leased) => leased,
            slot @ None => slot.insert(pipes.take()?),
        };
        loop {
            let n = splice_in(from.as_ref(), pipe).await?;
            if n == 0 {
                break 'copy;
            }
            splice_out(pipe, to.as_ref()).await?;
            total += n as u64;
            bytes.inc_by(n as u64);
            activity.touch();
            if n < SMALL_BUFFER {
                break;
            }
        }
    }
    // Half-close: the peer may still be sending the other way.
    let _ = socket2::SockRef::from(to.as_ref()).shutdown(Shutdown::Write);
    Ok(total)
}

/// Socket → pipe: waits for data; `Ok(0)` at end of stream.
async fn splice_in(from: &TcpStream, pipe: &mut LeasedPipe<'_>) -> io::Result<usize> {
    let Some(p) = pipe.pipe.as_ref() else {
        return Err(io::ErrorKind::BrokenPipe.into());
    };
    loop {
        from.readable().await?;
        match from.try_io(Interest::READABLE, || {
            splice(from, None, &p.write, None, p.capacity, flags()).map_err(io::Error::from)
        }) {
            Ok(n) => {
                pipe.pending += n;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Pipe → socket until the pipe is empty.
async fn splice_out(pipe: &mut LeasedPipe<'_>, to: &TcpStream) -> io::Result<()> {
    let Some(p) = pipe.pipe.as_ref() else {
        return Err(io::ErrorKind::BrokenPipe.into());
    };
    while pipe.pending > 0 {
        to.writable().await?;
        match to.try_io(Interest::WRITABLE, || {
            splice(&p.read, None, to, None, pipe.pending, flags()).map_err(io::Error::from)
        }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => pipe.pending -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    /// Small writes, one bulk write, small writes again: every byte arrives in order, the bulk
    /// part went through a pipe, and the pipe went back to the pool.
    #[tokio::test]
    async fn small_then_bulk_then_small_arrives_intact() {
        let (mut client, mut proxy_in) = pair().await;
        let (mut proxy_out, mut server) = pair().await;
        let pipes = PipePool::new();
        let activity = Activity::starting_now();
        let bytes = Counter::default();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sender = {
            let payload = payload.clone();
            async move {
                client.write_all(b"hello").await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                client.write_all(&payload).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                client.write_all(b"bye").await?;
                client.shutdown().await?;
                io::Result::Ok(client)
            }
        };
        let receiver = async {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await?;
            io::Result::Ok(got)
        };
        let (from, _) = proxy_in.split();
        let (_, to) = proxy_out.split();
        let (sent, moved, got) = tokio::join!(
            sender,
            forward(from, to, &pipes, &activity, &bytes),
            receiver
        );
        sent.expect("send");
        let total = 5 + payload.len() as u64 + 3;
        assert_eq!(moved.expect("forward"), total);
        let got = got.expect("receive");
        assert_eq!(got.len() as u64, total);
        assert_eq!(&got[..5], b"hello");
        assert!(got[5..5 + payload.len()] == payload[..], "payload intact");
        assert_eq!(&got[got.len() - 3..], b"bye");
        assert_eq!(bytes.get(), total);
        assert_eq!(pipes.idle(), 1, "the pipe was used and returned");
    }
}
