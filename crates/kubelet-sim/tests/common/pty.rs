//! A scripted terminal for kubectl's interactive sessions (`kubectl exec -it`, `kubectl run
//! -it`): Python's `pty` runs kubectl on a terminal of a known size and types into it.

use std::process::Stdio;
use std::time::Duration;

use super::process::ProcessCluster;

/// Runs argv[1..] on a new pseudo-terminal of 33 rows × 101 columns and, in `shell` mode (after
/// the prompt) or `attach-shell` mode (after kubectl's hint, pressing enter for a prompt), types
/// two commands into it; prints everything the terminal showed and exits with the command's code.
const PTY_DRIVER: &str = r##"
import fcntl, os, pty, select, struct, sys, termios, time
mode, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    os.execvp(argv[0], argv)
out = b""
def read_until(token, timeout):
    global out
    tokens = [] if token is None else token if isinstance(token, list) else [token]
    end = time.time() + timeout
    while not any(t in out for t in tokens) and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            out += data
    return any(t in out for t in tokens)
prompt = [b"$ ", b"# "]
if mode == "shell":
    read_until(prompt, 20)
elif mode == "attach-shell":
    # An attached shell printed its prompt before the session began: press enter for a new one
    # (what kubectl's "If you don't see a command prompt, try pressing enter." asks).
    read_until(b"try pressing enter", 20)
    os.write(fd, b"\n")
    read_until(prompt, 20)
if mode in ("shell", "attach-shell"):
    os.write(fd, b"stty size; echo answer=$((40+2))\n")
    read_until(b"answer=42", 20)
    os.write(fd, b"exit 3\n")
read_until(None, 30)
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"##;

impl ProcessCluster {
    /// `kubectl <args>` on a new terminal, driven in `mode` (`run`, `shell` or `attach-shell`, see
    /// [`PTY_DRIVER`]); (exit code, everything the terminal showed, stderr).
    pub async fn kubectl_on_pty(&self, mode: &str, args: &[&str]) -> (i32, String, String) {
        let driver = self.dir.path().join("pty_driver.py");
        if let Err(e) = std::fs::write(&driver, PTY_DRIVER) {
            panic!("write driver: {e}");
        }
        let mut cmd = self.command("python3");
        cmd.arg(&driver)
            .arg(mode)
            .arg("kubectl")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match tokio::time::timeout(Duration::from_secs(90), cmd.output()).await {
            Ok(Ok(o)) => (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
            other => panic!("kubectl {args:?} on a terminal: {other:?}"),
        }
    }
}
