//! `kubectl attach`: connecting to a running container's main process.
//!
//! The container's stdio belongs to its [shim](super::shim) (the kubelet may restart while the
//! container runs), so the shim serves attach sessions, as conmon does, on a Unix socket in the
//! instance directory (`attach`): [`server`] is the shim's side, [`client`] the kubelet's, which
//! bridges one socket connection to one `Attach` gRPC call. On the socket both sides speak the
//! [`Frame`]s below: the client's `Hello` first (which streams it wants), then stdin, close-stdin
//! and resizes one way, stdout and stderr the other. The end of the shim's side is the end of the
//! session (the container ended, or the session detached).
//!
//! What a container with `stdin: true` gets (as Kubernetes runtimes give it): a pipe on stdin that
//! stays open while nobody is attached (the process blocks reading it), or with `tty: true` a
//! pseudo-terminal whose master the shim holds; output still goes to the container log as well.

pub mod client;
pub mod server;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Largest frame payload accepted (stdin and output are sent in pieces of at most 32 KiB).
pub const MAX_FRAME: usize = 1 << 20;

const HELLO: u8 = 0;
const STDIN: u8 = 1;
const CLOSE_STDIN: u8 = 2;
const RESIZE: u8 = 3;
const STDOUT: u8 = 4;
const STDERR: u8 = 5;

/// One message on the attach socket: a type byte, a big-endian u32 length, the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → shim, first: which streams the session wants.
    Hello {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Stdin(Vec<u8>),
    /// Client → shim: the client's stdin ended (kubectl's close of channel 0).
    CloseStdin,
    Resize {
        width: u16,
        height: u16,
    },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, &[u8]) = match self {
            Frame::Hello {
                stdin,
                stdout,
                stderr,
            } => {
                let flags = [u8::from(*stdin), u8::from(*stdout), u8::from(*stderr)];
                return frame(HELLO, &flags);
            }
            Frame::Stdin(d) => (STDIN, d),
            Frame::CloseStdin => (CLOSE_STDIN, &[]),
            Frame::Resize { width, height } => {
                let mut size = width.to_be_bytes().to_vec();
                size.extend_from_slice(&height.to_be_bytes());
                return frame(RESIZE, &size);
            }
            Frame::Stdout(d) => (STDOUT, d),
            Frame::Stderr(d) => (STDERR, d),
        };
        frame(kind, payload)
    }

    /// The frame of a type byte and its payload.
    pub fn decode(kind: u8, payload: Vec<u8>) -> io::Result<Frame> {
        let flag = |i: usize| payload.get(i).is_some_and(|b| *b != 0);
        Ok(match kind {
            HELLO => Frame::Hello {
                stdin: flag(0),
                stdout: flag(1),
                stderr: flag(2),
            },
            STDIN => Frame::Stdin(payload),
            CLOSE_STDIN => Frame::CloseStdin,
            RESIZE if payload.len() == 4 => Frame::Resize {
                width: u16::from_be_bytes([payload[0], payload[1]]),
                height: u16::from_be_bytes([payload[2], payload[3]]),
            },
            STDOUT => Frame::Stdout(payload),
            STDERR => Frame::Stderr(payload),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "attach: unknown frame type {other} ({} bytes)",
                        payload.len()
                    ),
                ));
            }
        })
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload length of a frame header, refusing oversized frames.
fn payload_len(header: &[u8; 5]) -> io::Result<usize> {
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("attach: frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    Ok(len)
}

/// Reads one frame; `None` at a clean end of the stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut payload = vec![0u8; payload_len(&header)?];
    r.read_exact(&mut payload)?;
    Frame::decode(header[0], payload).map(Some)
}

/// [`read_frame`] for the kubelet's async side.
pub async fn read_frame_async(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> io::Result<Option<Frame>> {
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; 5];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut payload = vec![0u8; payload_len(&header)?];
    r.read_exact(&mut payload).await?;
    Frame::decode(header[0], payload).map(Some)
}

/// Longest socket path that fits `sockaddr_un.sun_path` (108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// A path by which `socket` can be bound or connected: itself when short enough, else — a root
/// dir in a deep temp directory easily makes it longer than `sun_path` — the same name under
/// `/proc/self/fd/<n>` of its opened directory (conmon's trick), which works while the returned
/// directory stays open.
pub fn socket_path(socket: &Path) -> io::Result<(PathBuf, Option<File>)> {
    if socket.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((socket.to_path_buf(), None));
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(io::Error::other(format!(
            "bad socket path {}",
            socket.display()
        )));
    };
    let dir = File::open(dir)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    Ok((path, Some(dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_golden_bytes() {
        let hello = Frame::Hello {
            stdin: true,
            stdout: true,
            stderr: false,
        };
        assert_eq!(hello.encode(), [0, 0, 0, 0, 3, 1, 1, 0]);
        let resize = Frame::Resize {
            width: 101,
            height: 33,
        };
        assert_eq!(resize.encode(), [3, 0, 0, 0, 4, 0, 101, 0, 33]);
        assert_eq!(
            Frame::Stdout(b"hi".to_vec()).encode(),
            [4, 0, 0, 0, 2, b'h', b'i']
        );
        let frames = [
            hello,
            Frame::Stdin(b"echo hello\n".to_vec()),
            Frame::CloseStdin,
            resize,
            Frame::Stdout(b"hello\n".to_vec()),
            Frame::Stderr(Vec::new()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let mut r = &bytes[..];
        for f in &frames {
            assert_eq!(read_frame(&mut r).ok().flatten().as_ref(), Some(f));
        }
        assert!(matches!(read_frame(&mut r), Ok(None)));
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut unknown: &[u8] = &[9, 0, 0, 0, 0];
        assert!(read_frame(&mut unknown).is_err());
        let mut huge: &[u8] = &[1, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut huge).is_err());
        let mut cut: &[u8] = &[1, 0, 0, 0, 5, b'a'];
        assert!(read_frame(&mut cut).is_err());
    }

    #[test]
    fn long_socket_paths_go_through_proc() {
        let short = Path::new("/tmp/x/attach");
        assert!(matches!(socket_path(short), Ok((p, None)) if p == short));
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let long = tmp.path().join("a".repeat(110));
        // The directory does not exist yet: an error, not a path that cannot work.
        assert!(socket_path(&long.join("attach")).is_err());
        std::fs::create_dir(&long).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let (p, held) = socket_path(&long.join("attach")).unwrap_or_else(|e| panic!("{e}"));
        assert!(held.is_some() && p.starts_with("/proc/self/fd/") && p.ends_with("attach"));
        let listener = std::os::unix::net::UnixListener::bind(&p);
        assert!(listener.is_ok(), "bind {}: {listener:?}", p.display());
        assert!(long.join("attach").exists());
    }
}
