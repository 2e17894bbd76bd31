//! The shim's side of attach: it holds the container's stdin (a pipe's write end or the
//! terminal's master) and serves sessions on the instance's `attach` socket, one thread per
//! session. Output reaches every attached session as the shim reads it ([`AttachServer::broadcast`],
//! called by the shim's log pumps).
//!
//! When a session with stdin ends its stdin (kubectl closes channel 0, or the session goes away),
//! it behaves as containerd's CRI plugin does: with `stdinOnce` the container's stdin is closed
//! for good (the process reads EOF; a terminal takes no more input); and unless that leaves a
//! pipe-stdin session waiting for the process's last output, the session ends.

use std::fs::File;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::layout::Stdio as StdioMode;
use super::{Frame, read_frame, socket_path};
use crate::logs::StreamKind;

/// Sessions attached at once; more are refused (closed at once).
pub const MAX_SESSIONS: usize = 16;
/// How long output may wait for a session that does not read before that session is dropped
/// (the container's output blocks meanwhile, as a full pipe would block it).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

struct Session {
    id: u64,
    conn: UnixStream,
    stdout: bool,
    stderr: bool,
}

struct Shared {
    mode: StdioMode,
    /// The container's stdin; `None` once closed (or when it has none).
    stdin: Mutex<Option<File>>,
    /// The terminal's master, for resizes.
    master: Option<File>,
    sessions: Mutex<Vec<Session>>,
    next_id: AtomicU64,
}

/// Serves attach sessions for one container instance (cheap to clone).
#[derive(Clone)]
pub struct AttachServer {
    shared: Arc<Shared>,
    socket: PathBuf,
}

impl AttachServer {
    /// `stdin`: where the container's stdin is written; `master`: its terminal, if it has one.
    pub fn new(mode: StdioMode, stdin: Option<File>, master: Option<File>) -> AttachServer {
        AttachServer {
            shared: Arc::new(Shared {
                mode,
                stdin: Mutex::new(stdin),
                master,
                sessions: Mutex::default(),
                next_id: AtomicU64::new(0),
            }),
            socket: PathBuf::new(),
        }
    }

    /// Listens on `socket` (a thread accepts sessions for as long as the shim lives).
    pub fn listen(&mut self, socket: &Path) -> io::Result<()> {
        let _ = std::fs::remove_file(socket);
        let (path, _dir) = socket_path(socket)?;
        let listener = UnixListener::bind(&path)?;
        self.socket = socket.to_path_buf();
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(&shared, conn));
            }
        });
        Ok(())
    }

    /// Sends container output to the sessions that want it.
    pub fn broadcast(&self, stream: StreamKind, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let frame = match stream {
            StreamKind::Stdout => Frame::Stdout(data.to_vec()),
            StreamKind::Stderr => Frame::Stderr(data.to_vec()),
        }
        .encode();
        let Ok(mut sessions) = self.shared.sessions.lock() else {
            return;
        };
        sessions.retain_mut(|s| {
            let wanted = match stream {
                StreamKind::Stdout => s.stdout,
                StreamKind::Stderr => s.stderr,
            };
            let ok = !wanted || s.conn.write_all(&frame).is_ok();
            if !ok {
                let _ = s.conn.shutdown(Shutdown::Both);
            }
            ok
        });
    }

    /// The container ended: end every session (after all output went out) and remove the socket.
    pub fn close(&self) {
        if let Ok(mut sessions) = self.shared.sessions.lock() {
            for s in sessions.drain(..) {
                let _ = s.conn.shutdown(Shutdown::Both);
            }
        }
        if !self.socket.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

impl Shared {
    fn write_stdin(&self, data: &[u8]) {
        let Ok(mut stdin) = self.stdin.lock() else {
            return;
        };
        // A process that closed its stdin (or ended) gets no more: drop our end.
        if let Some(f) = stdin.as_mut()
            && f.write_all(data).and_then(|_| f.flush()).is_err()
        {
            *stdin = None;
        }
    }

    /// A session's stdin ended; whether the session goes on (for the process's last output).
    fn stdin_ended(&self) -> bool {
        if self.mode.stdin_once {
            if let Ok(mut stdin) = self.stdin.lock() {
                *stdin = None;
            }
            // A pipe's reader now sees EOF and the process ends on its own: keep its output
            // coming. (kubectl closes a terminal's stdin only when it is done with the session.)
            return !self.mode.tty;
        }
        false
    }

    fn resize(&self, width: u16, height: u16) {
        if let Some(master) = &self.master {
            super::super::exec::set_size(master, width, height);
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.retain(|s| s.id != id);
        }
    }
}

/// One attach session, until it ends.
fn serve(shared: &Shared, mut conn: UnixStream) {
    let Ok(Some(Frame::Hello {
        stdin,
        stdout,
        stderr,
    })) = read_frame(&mut conn)
    else {
        return;
    };
    let Ok(writer) = conn.try_clone() else {
        return;
    };
    let _ = writer.set_write_timeout(Some(WRITE_TIMEOUT));
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let Ok(mut sessions) = shared.sessions.lock() else {
            return;
        };
        if sessions.len() >= MAX_SESSIONS {
            return;
        }
        sessions.push(Session {
            id,
            conn: writer,
            stdout,
            stderr,
        });
    }
    // Stdin only if the container keeps one open (`stdin: true`, not yet closed).
    let mut stdin_open = stdin && shared.stdin.lock().is_ok_and(|s| s.is_some());
    loop {
        match read_frame(&mut conn) {
            Ok(Some(Frame::Stdin(data))) if stdin_open => shared.write_stdin(&data),
            Ok(Some(Frame::CloseStdin)) if stdin_open => {
                stdin_open = false;
                if !shared.stdin_ended() {
                    break;
                }
            }
            Ok(Some(Frame::Resize { width, height })) => shared.resize(width, height),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if stdin_open {
        shared.stdin_ended();
    }
    shared.remove(id);
    let _ = conn.shutdown(Shutdown::Both);
}
