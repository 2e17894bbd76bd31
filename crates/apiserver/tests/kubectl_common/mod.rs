//! Harness of the kubectl tests: a niwa-store and a niwa-apiserver in-process on free loopback
//! ports, a kubeconfig and kubectl cache directory in a temp dir, and the real `kubectl` (the
//! dispatcher on PATH) run against them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use niwa_apiserver::http::kubeconfig::Kubeconfig;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub api: SocketAddr,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("local addr")
}

/// What one kubectl run printed (the runner is testkit's, shared with the kubelet's tests).
pub use niwa_testkit::kubectl::Output as Out;

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = CancellationToken::new();
        let store = free_addr();
        let config = niwa_store::StoreConfig::new(store, dir.path().join("store"));
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = niwa_store::run(config, token).await {
                eprintln!("store failed: {e}");
            }
        });
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let config = niwa_apiserver::ApiServerConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            vec![store.to_string()],
        );
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = niwa_apiserver::run(config, token, Some(ready_tx)).await {
                eprintln!("apiserver failed: {e}");
            }
        });
        let api = ready_rx.await.expect("apiserver ready");
        let kubeconfig = dir.path().join("kubeconfig");
        Kubeconfig::for_address(api)
            .write(&kubeconfig)
            .expect("write kubeconfig");
        Cluster {
            api,
            dir,
            kubeconfig,
            shutdown,
        }
    }

    /// Runs `kubectl <args>` (with this cluster's kubeconfig and cache dir), feeding `stdin`.
    pub async fn kubectl_in(&self, args: &[&str], stdin: &str) -> Out {
        self.kubectl_env(args, stdin, &[]).await
    }

    pub async fn kubectl_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Out {
        niwa_testkit::kubectl::run(&self.kubeconfig, self.dir.path(), args, Some(stdin), env).await
    }

    pub async fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_in(args, "").await
    }

    /// `kubectl apply -f -` / `create -f -` with a manifest.
    pub async fn with_manifest(&self, verb: &[&str], manifest: &str) -> Out {
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(["-f", "-"]);
        self.kubectl_in(&args, manifest).await
    }

    /// An HTTP request to the REST API (for checks kubectl cannot express).
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (u16, String) {
        use tokio::io::AsyncReadExt;
        let mut stream = tokio::net::TcpStream::connect(self.api)
            .await
            .expect("connect");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.api,
            body.len()
        );
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        // Chunked bodies: keep only the payload lines (good enough for JSON checks).
        (code, dechunk(&body))
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return if out.is_empty() {
                body.to_string()
            } else {
                out
            };
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 || tail.len() < n {
            return out;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
}
