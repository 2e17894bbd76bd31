//! Test harness shared by the store's integration tests: start niwa-store or a real etcd on free
//! loopback ports in a temp dir, wait until they answer, kill them (gracefully or with SIGKILL).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released; the race with other tests is negligible).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn wait_for_port(addr: SocketAddr, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it was ready: {status}");
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not open {addr} within 30 s");
}

/// A niwa-store child process with its own data dir.
pub struct Store {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra_args: Vec<String>,
}

impl Store {
    pub fn start() -> Store {
        Store::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Store {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        let mut store = Store {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
            _tmp: Some(tmp),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        store.spawn();
        store
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.with_extension("log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_niwa-store"))
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--metrics-listen")
            .arg(self.metrics_addr.to_string())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn niwa-store");
        wait_for_port(self.addr, &mut child, "niwa-store");
        self.child = Some(child);
    }

    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The text of the store's /metrics page.
    pub fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect(self.metrics_addr).expect("connect to /metrics");
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("send the request");
        let mut text = String::new();
        conn.read_to_string(&mut text).expect("read /metrics");
        text
    }

    /// One sample's value from /metrics (`name` with its suffix, e.g. `..._count`).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the store again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A real etcd 3.4 (Debian's etcd-server) on free ports, for differential tests and benchmarks.
pub struct Etcd {
    child: Option<Child>,
    pub addr: SocketAddr,
    _tmp: tempfile::TempDir,
}

impl Etcd {
    /// Path of the etcd binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    pub fn start() -> Etcd {
        let bin =
            Etcd::binary().expect("etcd is not installed (scripts/test installs etcd-server)");
        let tmp = tempfile::tempdir().expect("temp dir");
        let client = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let peer = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(tmp.path().join("etcd.log")).expect("log file");
        let mut child = Command::new(bin)
            .arg("--name=default")
            .arg(format!("--data-dir={}", tmp.path().join("data").display()))
            .arg(format!("--listen-client-urls=http://{client}"))
            .arg(format!("--advertise-client-urls=http://{client}"))
            .arg(format!("--listen-peer-urls=http://{peer}"))
            .arg(format!("--initial-advertise-peer-urls=http://{peer}"))
            .arg(format!("--initial-cluster=default=http://{peer}"))
            .env_remove("ETCDCTL_API")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        wait_for_port(client, &mut child, "etcd");
        let etcd = Etcd {
            child: Some(child),
            addr: client,
            _tmp: tmp,
        };
        // The client port opens before the member has elected itself; wait for a real answer.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if etcdctl(&etcd.endpoint(), &["endpoint", "health"])
                .status
                .success()
            {
                return etcd;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not become healthy");
    }

    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the real `etcdctl` (v3 API) against `endpoint`.
pub fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    etcdctl_stdin(endpoint, args, None)
}

pub fn etcdctl_stdin(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is not installed (scripts/test installs etcd-client)");
    if let Some(mut pipe) = child.stdin.take()
        && let Some(input) = stdin
    {
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("etcdctl output")
}

/// stdout of a successful etcdctl call (panics with stderr otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "etcdctl failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn data_dir_size(dir: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        let m = e
                            .metadata()
                            .map(|m| (m.is_dir(), m.len()))
                            .unwrap_or((false, 0));
                        if m.0 { walk(&e.path()) } else { m.1 }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir)
}
