//! Helpers for the etcdctl conformance tests: failed-command output, JSON parsing, polling with a
//! deadline, background `etcdctl watch` / `lease keep-alive` processes, and an `etcd-client` handle
//! for checking gRPC status codes.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::etcdctl;

/// stderr of an etcdctl call that must have failed (panics with its stdout otherwise).
pub fn fail(out: Output) -> String {
    assert!(
        !out.status.success(),
        "etcdctl unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `Error: ...` line etcdctl prints last on stderr (it logs a JSON retry warning before it).
pub fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no `Error:` line in etcdctl's stderr:\n{stderr}"))
        .to_string()
}

/// Runs a command that must fail and returns its `Error: ...` line.
pub fn ctl_error(endpoint: &str, args: &[&str]) -> String {
    error_line(&fail(etcdctl(endpoint, args)))
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("etcdctl printed invalid JSON ({e}):\n{text}"))
}

/// The sorted field names of a JSON object (to check that no field is missing or extra).
pub fn fields(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// The store's current revision, from a `get -w json` header.
pub fn revision(endpoint: &str) -> i64 {
    let v = json(&crate::common::ok(etcdctl(
        endpoint,
        &["get", "revision-probe", "-w", "json"],
    )));
    v["header"]["revision"].as_i64().expect("header.revision")
}

/// Polls `f` until it returns true or `timeout` passes (then panics with `what`).
pub fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A long-running etcdctl (watch, lease keep-alive) whose output is collected while it runs. It is
/// killed when dropped.
pub struct Background {
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    mut pipe: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .expect("output buffer")
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    })
}

/// What a background etcdctl printed, once it ended.
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Background {
    pub fn start(endpoint: &str, args: &[&str]) -> Background {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl is not installed");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Background {
            child: Some(child),
            stdout,
            stderr,
            readers,
        }
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("output buffer").clone()
    }

    /// Waits until stdout satisfies `pred`; panics with everything printed after `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if pred(&out) {
                return out;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "etcdctl did not print what was expected (exited: {exited:?}).\nstdout:\n{out}\nstderr:\n{}",
                self.stderr.lock().expect("output buffer")
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn finish(mut self, kill: bool, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + timeout;
        let mut exited = false;
        while !kill && !exited && Instant::now() < deadline {
            exited = matches!(child.try_wait(), Ok(Some(_)));
            if !exited {
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        if !exited {
            let _ = child.kill();
        }
        let status = child.wait().ok().filter(|_| exited);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr.lock().expect("output buffer").clone(),
        }
    }

    /// Kills it and returns everything it printed.
    pub fn stop(self) -> Finished {
        self.finish(true, Duration::ZERO)
    }

    /// Waits for it to exit on its own (`status` stays `None` if it had to be killed).
    pub fn wait_exit(self, timeout: Duration) -> Finished {
        self.finish(false, timeout)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An `etcd-client` connection to the store.
pub async fn client(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([format!("http://{endpoint}")], None)
        .await
        .expect("etcd-client connect")
}

/// The gRPC code and message of a failed etcd-client call.
pub fn status<T: std::fmt::Debug>(res: Result<T, etcd_client::Error>) -> (tonic::Code, String) {
    match res {
        Err(etcd_client::Error::GRpcStatus(s)) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC error status, got {other:?}"),
    }
}

/// Runs a conformance test body (`fn name(endpoint: &str)`) against niwa-store and against a real
/// etcd 3.4, as `name::niwa` and `name::etcd`: the etcd run proves that the expected outputs are
/// etcd's own, the niwa run that the store reproduces them.
#[macro_export]
macro_rules! against_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn niwa() {
                let store = $crate::common::Store::start();
                super::$name(&store.endpoint());
            }

            #[test]
            fn etcd() {
                let etcd = $crate::common::Etcd::start();
                super::$name(&etcd.endpoint());
            }
        }
    };
    (async $name:ident) => {
        mod $name {
            #[tokio::test]
            async fn niwa() {
                let store = $crate::common::Store::start();
                super::$name(&store.endpoint()).await;
            }

            #[tokio::test]
            async fn etcd() {
                let etcd = $crate::common::Etcd::start();
                super::$name(&etcd.endpoint()).await;
            }
        }
    };
}
