//! `kubectl exec` sessions: the command runs in the container (`niwa-kubelet enter --join`), its
//! stdout and stderr stream back as they come, stdin flows in, and the exit code ends the session.
//!
//! With a TTY (`kubectl exec -it`) the command gets a pseudo-terminal instead of pipes, as a
//! container runtime gives it: the kubelet holds the master side, the slave becomes the
//! command's stdin, stdout and stderr and its controlling terminal (`enter --join-tty` makes the
//! helper a session leader first, so ^C and job control reach the shell), everything it writes
//! comes back as stdout, and resize messages set the terminal's size (the shell gets SIGWINCH).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;

use futures::StreamExt;
use niwa_api::proto::kubelet::exec_input::Input;
use niwa_api::proto::kubelet::exec_output::Output;
use niwa_api::proto::kubelet::{ExecExit, ExecInput, ExecOutput, ExecStart, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::runtime::ExecStream;

/// Output messages buffered per session before the reader waits for the client.
const OUTPUT_QUEUE: usize = 64;
/// How long terminal output may still drain after the command exited (a background process
/// that keeps the terminal open must not hold the session forever).
const TTY_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);
/// What a terminal's reader sees as end of input (^D) when the client closes stdin.
const EOT: u8 = 0x04;

async fn pump(
    mut from: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Result<ExecOutput, Status>>,
    stderr: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // A terminal's master reports EIO once the last slave descriptor is closed: the end.
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let data = buf[..n].to_vec();
        let output = if stderr {
            Output::Stderr(data)
        } else {
            Output::Stdout(data)
        };
        if tx
            .send(Ok(ExecOutput {
                output: Some(output),
            }))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn exit_message(status: std::io::Result<std::process::ExitStatus>) -> ExecOutput {
    let exit = match status {
        Ok(s) => ExecExit {
            exit_code: s.code().unwrap_or(137),
            message: String::new(),
        },
        Err(e) => ExecExit {
            exit_code: 126,
            message: e.to_string(),
        },
    };
    ExecOutput {
        output: Some(Output::Exit(exit)),
    }
}

pub fn session(
    exe: PathBuf,
    pid: u32,
    start: ExecStart,
    input: Streaming<ExecInput>,
) -> Result<ExecStream, Status> {
    if start.tty {
        return tty_session(exe, pid, start, input);
    }
    let mut input = input;
    let mut child = tokio::process::Command::new(exe)
        .arg("enter")
        .arg("--join")
        .arg(pid.to_string())
        .arg("--")
        .args(&start.command)
        .stdin(if start.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Status::internal(format!("cannot start the exec helper: {e}")))?;
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut stdin = child.stdin.take();
    tokio::spawn(async move {
        let out = stdout.map(|s| tokio::spawn(pump(s, tx.clone(), false)));
        let err = stderr.map(|s| tokio::spawn(pump(s, tx.clone(), true)));
        let feeder = tokio::spawn(async move {
            while let Some(Ok(msg)) = input.next().await {
                match msg.input {
                    Some(Input::Stdin(data)) => {
                        if let Some(s) = stdin.as_mut()
                            && s.write_all(&data).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(Input::CloseStdin(_)) => stdin = None,
                    _ => {}
                }
            }
        });
        let status = child.wait().await;
        for t in [out, err].into_iter().flatten() {
            let _ = t.await;
        }
        feeder.abort();
        let _ = tx.send(Ok(exit_message(status))).await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// A new pseudo-terminal: (master, slave).
pub(super) fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((master, slave))
}

/// Sets the terminal's size (its foreground process gets SIGWINCH).
pub(super) fn set_size(master: &impl std::os::fd::AsFd, width: u16, height: u16) {
    let winsize = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(e) = rustix::termios::tcsetwinsize(master, winsize) {
        tracing::debug!(error = %e, "terminal resize failed");
    }
}

fn resize(master: &OwnedFd, size: &TerminalSize) {
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    set_size(master, clamp(size.width), clamp(size.height));
}

fn tty_session(
    exe: PathBuf,
    pid: u32,
    start: ExecStart,
    mut input: Streaming<ExecInput>,
) -> Result<ExecStream, Status> {
    let internal = |what: &str, e: std::io::Error| {
        Status::internal(format!("cannot set up the exec terminal: {what}: {e}"))
    };
    let (master, slave) = open_pty().map_err(|e| internal("openpty", e))?;
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| internal("dup", e));
    let stdio = [dup(&slave)?, dup(&slave)?, slave];
    let [stdin, stdout, stderr] = stdio;
    let mut child = {
        // The Command keeps the slave descriptors until dropped: drop it right after the spawn
        // so that the master sees EOF when the command's side is gone.
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("enter")
            .arg("--join-tty")
            .arg(pid.to_string())
            .arg("--")
            .args(&start.command)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        cmd.spawn()
            .map_err(|e| Status::internal(format!("cannot start the exec helper: {e}")))?
    };
    // Reads and writes of a tokio File each take the file for the whole operation: separate
    // descriptors let stdin flow while a read waits for output.
    let reader = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
    let mut writer = tokio::fs::File::from_std(std::fs::File::from(dup(&master)?));
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    tokio::spawn(async move {
        let mut out = tokio::spawn(pump(reader, tx.clone(), false));
        let feeder = tokio::spawn(async move {
            let mut open = start.stdin;
            while let Some(Ok(msg)) = input.next().await {
                let data = match msg.input {
                    Some(Input::Stdin(data)) if open => data,
                    Some(Input::CloseStdin(_)) if open => {
                        open = false;
                        vec![EOT]
                    }
                    Some(Input::Resize(size)) => {
                        resize(&master, &size);
                        continue;
                    }
                    _ => continue,
                };
                if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
                    open = false;
                }
            }
        });
        let status = child.wait().await;
        if tokio::time::timeout(TTY_DRAIN, &mut out).await.is_err() {
            tracing::debug!("exec: terminal still open after the command exited");
            out.abort();
        }
        feeder.abort();
        let _ = tx.send(Ok(exit_message(status))).await;
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
