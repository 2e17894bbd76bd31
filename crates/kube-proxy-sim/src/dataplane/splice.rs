//! Zero-copy TCP forwarding: each direction moves bytes socket → pipe → socket with `splice(2)`,
//! so payload never enters userspace. nix's `splice` is a safe wrapper; tokio's readiness
//! (`readable`/`writable` + `try_io`) drives the non-blocking calls.

use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use nix::unistd::pipe2;
use prometheus_client::metrics::counter::Counter;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes moved per splice call: the default pipe capacity (16 pages).
const CHUNK: usize = 64 * 1024;

/// When either direction of a connection last moved bytes (ms since `start`), for idle timeouts.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
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

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

/// Moves everything `from` sends into `to` until `from` reaches end of stream, then half-closes
/// `to` (so the peer sees the EOF and the other direction can finish). Returns bytes moved.
pub async fn splice_one_way(
    from: &TcpStream,
    to: &TcpStream,
    activity: &Activity,
    bytes: &Counter,
) -> io::Result<u64> {
    let (pipe_read, pipe_write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    let mut total = 0u64;
    loop {
        let filled = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from, None, &pipe_write, None, CHUNK, flags()).map_err(io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if filled == 0 {
            // Half-close: the peer may still be sending the other way.
            let _ = socket2::SockRef::from(to).shutdown(Shutdown::Write);
            return Ok(total);
        }
        let mut left = filled;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pipe_read, None, to, None, left, flags()).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => left -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        total += filled as u64;
        bytes.inc_by(filled as u64);
        activity.touch();
    }
}
