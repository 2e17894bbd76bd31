//! `kubectl attach` and `kubectl run -i/-it` with the real kubectl against the process runtime:
//! the container's stdin is a pipe (or a terminal with `tty`) held open by its shim, attach
//! sessions reach its main process, and `kubectl run --rm` deletes the pod after the session.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::process::ProcessCluster;
use common::{phase, restarts, wait_gone, wait_pod};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const T: Duration = Duration::from_secs(30);

/// The tutorial's `kubectl run -i --rm --restart=Never --image=busybox t -- sh`, fed a script:
/// the shell reads it from the attached stdin (closed at its end: `stdinOnce`), its output comes
/// back, and kubectl deletes the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_run_i_rm_runs_a_shell_and_deletes_the_pod() {
    let pc = ProcessCluster::start().await;
    let over = pc.node_override();
    let args = [
        "run",
        "-i",
        "--rm",
        "--restart=Never",
        "--image=busybox",
        "t",
        &format!("--overrides={over}"),
        "--",
        "sh",
    ];
    let (code, out, err) = pc
        .kubectl_in(&args, Some("echo hello $((6*7)); exit\n"))
        .await;
    assert_eq!(code, 0, "kubectl run: {out}{err}");
    assert!(out.contains("hello 42"), "output: {out:?} {err}");
    assert!(out.contains("pod \"t\" deleted"), "output: {out:?} {err}");
    wait_gone(&pc.c.pods(), "t", T).await;

    // A failing script: kubectl reports the container's exit code as its own.
    let (code, out, err) = pc.kubectl_in(&args, Some("exit 4\n")).await;
    assert_eq!(code, 4, "kubectl run: {out}{err}");
    wait_gone(&pc.c.pods(), "t", T).await;
}

/// `kubectl attach -i <pod>` that types `line`, waits for `expect` in the output and then closes
/// its stdin (a session whose stdin ends before the output came would end without it, as with
/// containerd); (exit code, stdout, stderr).
async fn attach_and_type(
    pc: &ProcessCluster,
    pod: &str,
    line: &str,
    expect: &str,
) -> (i32, String, String) {
    let mut child = pc
        .command("kubectl")
        .args(["attach", "-i", pod])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl attach: {e}"));
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        panic!("kubectl's stdio");
    };
    let _ = stdin.write_all(line.as_bytes()).await;
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    let seen = tokio::time::timeout(T, async {
        while let Ok(Some(l)) = lines.next_line().await {
            out.push_str(&l);
            out.push('\n');
            if l.contains(expect) {
                return true;
            }
        }
        false
    })
    .await;
    drop(stdin);
    let done = tokio::time::timeout(T, child.wait_with_output()).await;
    let Ok(Ok(o)) = done else {
        panic!("kubectl attach did not end after its stdin closed: {out:?}");
    };
    assert_eq!(
        seen,
        Ok(true),
        "output: {out:?} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.push_str(&String::from_utf8_lossy(&o.stdout));
    (
        o.status.code().unwrap_or(-1),
        out,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `kubectl attach -i` to a running container with `stdin: true` (no `stdinOnce`): each session
/// reaches the same shell, its stdin stays open between sessions, and output keeps going to the
/// container log too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_reaches_the_main_process() {
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "shell"},
        "spec": {"containers": [{"name": "sh", "image": "busybox", "command": ["sh"],
                                 "stdin": true}]},
    }))
    .await;
    wait_pod(&pc.c.pods(), "shell", T, |p| phase(p) == "Running").await;

    let (code, out, err) = attach_and_type(&pc, "shell", "n=1; echo first $n\n", "first 1").await;
    assert_eq!(code, 0, "kubectl attach: {out}{err}");
    // Same process, variables kept: the session's end did not close the container's stdin.
    let (code, out, err) = attach_and_type(&pc, "shell", "echo second $n\n", "second 1").await;
    assert_eq!(code, 0, "kubectl attach: {out}{err}");
    let p = wait_pod(&pc.c.pods(), "shell", T, |p| phase(p) == "Running").await;
    assert_eq!(restarts(&p, "sh"), 0);
    let logs = pc.kubectl_ok(&["logs", "shell"]).await;
    assert!(
        logs.contains("first 1") && logs.contains("second 1"),
        "log: {logs:?}"
    );
}

/// `kubectl run -it --rm` on a terminal: the container's shell runs on a terminal of the
/// client's size (resize over channel 4), typed input reaches it, `exit 3` ends the session,
/// kubectl exits with the container's code and deletes the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_run_it_rm_gives_a_shell_on_a_terminal() {
    let pc = ProcessCluster::start().await;
    let over = pc.node_override();
    let (code, out, err) = pc
        .kubectl_on_pty(
            "attach-shell",
            &[
                "run",
                "-it",
                "--rm",
                "--restart=Never",
                "--image=busybox",
                "tty",
                &format!("--overrides={over}"),
                "--",
                "sh",
            ],
        )
        .await;
    assert!(out.contains("33 101"), "stty size: {out:?} {err}");
    assert!(out.contains("answer=42"), "output: {out:?} {err}");
    assert!(out.contains("pod \"tty\" deleted"), "output: {out:?} {err}");
    assert_eq!(code, 3, "exit code; output: {out:?} {err}");
    wait_gone(&pc.c.pods(), "tty", T).await;
}
