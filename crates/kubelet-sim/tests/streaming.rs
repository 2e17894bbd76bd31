//! The streaming subresources with the real `kubectl` against the process runtime:
//! `kubectl port-forward` (to a pod and to a Service; SPDY over WebSocket, which kubectl 1.31+
//! tries first, and plain SPDY with `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`) with curl through
//! the forwarded port, and `kubectl exec -it` on a scripted terminal (Python's `pty`): the
//! command sees a TTY of the client's size, typed input reaches the shell and `exit 3` is
//! kubectl's exit code.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::process::ProcessCluster;
use tokio::io::{AsyncBufReadExt, BufReader};

const T: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// A running `kubectl port-forward`, ready when it printed its "Forwarding from" line.
struct Forward {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

async fn port_forward(pc: &ProcessCluster, target: &str, remote: u16, websockets: bool) -> Forward {
    let port = free_port();
    // kubectl's stderr goes to a file: a pipe nobody reads would block it once full.
    let log = pc.dir.path().join(format!("port-forward-{port}.log"));
    let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let mut cmd = pc.command("kubectl");
    cmd.args(["port-forward", target, &format!("{port}:{remote}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            stderr.try_clone().unwrap_or_else(|e| panic!("dup: {e}")),
        ));
    if !websockets {
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl port-forward: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("stdout");
    };
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(T, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(&format!("Forwarding from 127.0.0.1:{port}")) {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        let _ = child.start_kill();
        let _ = child.wait().await;
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("kubectl port-forward {target} did not start: {err}");
    }
    // Keep draining stdout ("Handling connection for …") so kubectl never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Forward { child, port, log }
}

async fn curl(port: u16) -> (bool, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("curl: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_to_a_pod_and_a_service() {
    let pc = ProcessCluster::start().await;
    pc.nginx("web").await;
    pc.kubectl_ok(&[
        "expose",
        "pod",
        "web",
        "--name=websvc",
        "--port=8080",
        "--target-port=80",
    ])
    .await;

    // pod/web over SPDY-over-WebSocket (kubectl's default): several connections, one after the
    // other and at once, through one port-forward.
    let mut fwd = port_forward(&pc, "pod/web", 80, true).await;
    for _ in 0..3 {
        let (ok, page) = curl(fwd.port).await;
        assert!(ok && page.contains("Welcome to nginx!"), "curl: {page}");
        assert!(
            page.contains("<b>web</b>"),
            "the page names the pod: {page}"
        );
    }
    let together = futures::future::join_all((0..4).map(|_| curl(fwd.port))).await;
    for (ok, page) in together {
        assert!(ok && page.contains("Welcome to nginx!"), "curl: {page}");
    }
    let _ = fwd.child.start_kill();

    // svc/websvc over plain SPDY (the fallback): kubectl picks a pod of the Service and maps
    // the Service port 8080 to its targetPort 80.
    let mut fwd = port_forward(&pc, "svc/websvc", 8080, false).await;
    let (ok, page) = curl(fwd.port).await;
    assert!(
        ok && page.contains("<b>web</b>"),
        "curl through svc: {page}"
    );
    let _ = fwd.child.start_kill();

    // Nothing listens on port 81: curl gets nothing, kubectl reports the kubelet's dial error.
    let mut fwd = port_forward(&pc, "web", 81, true).await;
    let (ok, page) = curl(fwd.port).await;
    assert!(!ok, "nothing listens on 81: {page}");
    // kubectl logs the error on the error stream (and may exit: "lost connection to pod").
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = fwd.child.start_kill();
    let _ = fwd.child.wait().await;
    let stderr = std::fs::read_to_string(&fwd.log).unwrap_or_default();
    assert!(
        stderr.contains("error forwarding port 81 to pod web") && stderr.contains("refused"),
        "kubectl's error: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_it_runs_on_a_terminal() {
    let pc = ProcessCluster::start().await;
    pc.nginx("web").await;
    let pc = &pc;
    let run = |mode: &'static str, command: &'static [&'static str]| {
        let mut args = vec!["exec", "-it", "web", "--"];
        args.extend_from_slice(command);
        async move { pc.kubectl_on_pty(mode, &args).await }
    };

    // A command on a TTY: it sees a terminal, and its exit code is kubectl's.
    let (code, out, err) = run(
        "run",
        &[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo on-a-tty; exit 3",
        ],
    )
    .await;
    assert!(out.contains("on-a-tty"), "output: {out:?} {err}");
    assert_eq!(code, 3, "exit code; output: {out:?} {err}");

    // An interactive shell: the terminal has the client's size (resize channel), typed input
    // runs, `exit 3` ends the session with 3.
    let (code, out, err) = run("shell", &["sh"]).await;
    assert!(out.contains("33 101"), "stty size: {out:?} {err}");
    assert!(out.contains("answer=42"), "output: {out:?} {err}");
    assert_eq!(code, 3, "exit code; output: {out:?} {err}");
}
