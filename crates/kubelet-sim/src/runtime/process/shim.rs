//! `niwa-kubelet shim <launch.json>`: the parent of one container instance, like containerd's
//! shim or conmon. It starts a session of its own (so the kubelet can stop and restart without
//! taking containers down), starts the container through `enter`, turns its stdout and stderr
//! into the CRI log (with rotation), and when the container ends records how in `exit.json`.
//! It also holds the container's stdin (a pipe, or a terminal with `tty`) and serves `kubectl
//! attach` sessions on the instance's attach socket ([`super::attach::server`]).
//!
//! It tells the kubelet one line on its own stdout: `started <pid> <time>` or
//! `failed <message>`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::attach::server::AttachServer;
use super::enter::{EXEC_MARKER, FAILED_MARKER};
use super::layout::{ExitRecord, LaunchSpec};
use crate::logs::StreamKind;
use crate::logs::file::{LogWriter, Rotation};
use crate::time::Timestamp;

/// What the shim tells the kubelet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShimReport {
    Started { pid: u32, at: Timestamp },
    Failed(String),
}

impl ShimReport {
    pub fn line(&self) -> String {
        match self {
            ShimReport::Started { pid, at } => format!("started {pid} {at}\n"),
            ShimReport::Failed(m) => format!("failed {}\n", m.replace('\n', " ")),
        }
    }

    pub fn parse(line: &str) -> Option<ShimReport> {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("started ") {
            let (pid, at) = rest.split_once(' ')?;
            return Some(ShimReport::Started {
                pid: pid.parse().ok()?,
                at: at.parse().ok()?,
            });
        }
        line.strip_prefix("failed ")
            .map(|m| ShimReport::Failed(m.to_string()))
    }
}

fn report(r: &ShimReport) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(r.line().as_bytes());
    let _ = out.flush();
}

/// Writes `exit.json` atomically (the kubelet may read it at any time).
pub fn write_exit(path: &Path, record: &ExitRecord) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec(record).map_err(io::Error::other)?)?;
    fs::rename(tmp, path)
}

/// Reads the container's stdout: first the enter helper's marker, then output for the log.
fn pump_stdout(
    mut out: impl Read,
    log: Arc<Mutex<LogWriter>>,
    attach: AttachServer,
    pid: u32,
    marker: std::sync::mpsc::Sender<ShimReport>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut head: Vec<u8> = Vec::new();
    let mut marker = Some(marker);
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        if marker.is_some() {
            head.extend_from_slice(data);
            // Markers end with a newline; wait for it.
            let Some(end) = head.iter().position(|b| *b == b'\n') else {
                continue;
            };
            let mut line = head[..=end].to_vec();
            let rest = head[end + 1..].to_vec();
            // A terminal turns the marker's "\n" into "\r\n".
            if line.ends_with(b"\r\n") {
                line.remove(line.len() - 2);
            }
            head.clear();
            if let Some(tx) = marker.take() {
                let r = if line == EXEC_MARKER {
                    ShimReport::Started {
                        pid,
                        at: Timestamp::now(),
                    }
                } else if let Some(m) = line.strip_prefix(FAILED_MARKER) {
                    ShimReport::Failed(String::from_utf8_lossy(m).trim_end().to_string())
                } else {
                    ShimReport::Failed("the container's setup ended unexpectedly".into())
                };
                let _ = tx.send(r);
            }
            write_log(&log, StreamKind::Stdout, &rest);
            attach.broadcast(StreamKind::Stdout, &rest);
            data = &[];
        }
        write_log(&log, StreamKind::Stdout, data);
        attach.broadcast(StreamKind::Stdout, data);
    }
}

fn write_log(log: &Mutex<LogWriter>, stream: StreamKind, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    if let Ok(mut w) = log.lock() {
        let _ = w.write(stream, data, Timestamp::now());
    }
}

fn pump_stderr(mut err: impl Read, log: Arc<Mutex<LogWriter>>, attach: AttachServer) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match err.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                write_log(&log, StreamKind::Stderr, &buf[..n]);
                attach.broadcast(StreamKind::Stderr, &buf[..n]);
            }
        }
    }
}

/// The container's end of its stdio and the shim's: with a TTY, one terminal (the container
/// gets the slave as stdin, stdout and stderr; `enter` makes it the controlling terminal);
/// otherwise pipes for stdout and stderr, and for stdin a pipe when it has `stdin`, else
/// /dev/null.
struct Terminal {
    master: OwnedFd,
    slave: OwnedFd,
}

fn terminal(tty: bool) -> io::Result<Option<Terminal>> {
    if !tty {
        return Ok(None);
    }
    let (master, slave) = super::exec::open_pty()?;
    Ok(Some(Terminal { master, slave }))
}

/// The enter helper's command with the container's stdio.
fn enter_command(
    exe: &Path,
    launch: &Path,
    term: Option<&Terminal>,
    stdin: bool,
) -> io::Result<Command> {
    let mut cmd = Command::new(exe);
    cmd.arg("enter").arg(launch);
    match term {
        Some(t) => {
            cmd.stdin(Stdio::from(t.slave.try_clone()?))
                .stdout(Stdio::from(t.slave.try_clone()?))
                .stderr(Stdio::from(t.slave.try_clone()?));
        }
        None => {
            cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
        }
    }
    Ok(cmd)
}

/// Runs the shim; the returned code is the shim's own exit status.
pub fn shim(launch: &Path, exe: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    let spec: LaunchSpec = match fs::read(launch)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            report(&ShimReport::Failed(format!(
                "cannot read {}: {e}",
                launch.display()
            )));
            return 1;
        }
    };
    let rotation = Rotation {
        max_size: spec.log_max_size,
        max_files: spec.log_max_files,
    };
    let log = match LogWriter::create(&spec.log, rotation) {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => {
            report(&ShimReport::Failed(format!(
                "cannot open the log {}: {e}",
                spec.log.display()
            )));
            return 1;
        }
    };
    let stdio = spec.stdio;
    let spawned = terminal(stdio.tty).and_then(|term| {
        // The Command holds slave descriptors until dropped, and the terminal's slave must be
        // closed here for the master to see the end once the container's side is gone.
        let child = enter_command(exe, launch, term.as_ref(), stdio.stdin)?.spawn()?;
        Ok((child, term.map(|t| t.master)))
    });
    let (mut child, master) = match spawned {
        Ok(c) => c,
        Err(e) => {
            report(&ShimReport::Failed(format!(
                "cannot start {}: {e}",
                exe.display()
            )));
            return 1;
        }
    };
    let pid = child.id();
    let _ = fs::write(&spec.pid, pid.to_string());
    let dup = |fd: &OwnedFd| fd.try_clone().ok().map(File::from);
    // Output comes from the terminal or the pipes; stdin goes to the terminal or the pipe.
    let (stdout, stderr, stdin): (Option<Box<dyn Read + Send>>, _, _) = match &master {
        Some(m) => (
            dup(m).map(|f| Box::new(f) as Box<dyn Read + Send>),
            None,
            dup(m).filter(|_| stdio.stdin),
        ),
        None => (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take(),
            child.stdin.take().map(|s| File::from(OwnedFd::from(s))),
        ),
    };
    let mut attach = AttachServer::new(stdio, stdin, master.map(File::from));
    if let Some(socket) = &spec.attach
        && let Err(e) = attach.listen(socket)
    {
        // The container runs without attach (kubectl attach then says so).
        eprintln!("shim: cannot listen on {}: {e}", socket.display());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let out_log = log.clone();
    let out_attach = attach.clone();
    let out_thread = std::thread::spawn(move || {
        if let Some(out) = stdout {
            pump_stdout(out, out_log, out_attach, pid, tx);
        }
    });
    let err_log = log.clone();
    let err_attach = attach.clone();
    let err_thread = std::thread::spawn(move || {
        if let Some(err) = stderr {
            pump_stderr(err, err_log, err_attach);
        }
    });
    // The first report (marker) or, if the process dies first, none.
    let first = rx.recv().ok();
    let mut start_error = None;
    match &first {
        Some(r @ ShimReport::Started { .. }) => report(r),
        Some(ShimReport::Failed(m)) => start_error = Some(m.clone()),
        None => {}
    }
    let status = child.wait();
    let _ = out_thread.join();
    let _ = err_thread.join();
    if let Ok(mut w) = log.lock() {
        let _ = w.flush(Timestamp::now());
    }
    // All output went out: end the attach sessions.
    attach.close();
    let (exit_code, signal) = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            (None, None) => (255, None),
        },
        Err(_) => (255, None),
    };
    if first.is_none() {
        start_error = Some(format!(
            "the container process exited ({exit_code}) before it started"
        ));
    }
    let reason = spec
        .memory_cgroup
        .as_deref()
        .filter(|cg| signal == Some(9) && super::cgroup::oom_killed(cg))
        .map(|_| "OOMKilled".to_string());
    let record = ExitRecord {
        exit_code: if start_error.is_some() {
            128
        } else {
            exit_code
        },
        signal,
        reason,
        finished_at: Timestamp::now().to_string(),
        start_error: start_error.clone(),
    };
    let _ = write_exit(&spec.exit, &record);
    if let Some(m) = start_error {
        report(&ShimReport::Failed(m));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let at: Timestamp = "2026-01-01T00:00:00.25Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let r = ShimReport::Started { pid: 42, at };
        assert_eq!(ShimReport::parse(&r.line()), Some(r));
        let f = ShimReport::Failed("exec: \"x\": not found\nreally".into());
        assert_eq!(
            ShimReport::parse(&f.line()),
            Some(ShimReport::Failed("exec: \"x\": not found really".into()))
        );
        assert_eq!(ShimReport::parse("garbage"), None);
    }
}
