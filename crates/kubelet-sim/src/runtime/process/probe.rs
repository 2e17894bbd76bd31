//! Probe and lifecycle-hook handlers of the process runtime: HTTP GET, TCP connect, gRPC health
//! check and exec (in the container, through `niwa-kubelet enter --join`), with the kubelet's
//! timeouts, success rules (HTTP 200–399, gRPC SERVING) and failure messages.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::grpc_health::HealthCheckRequest;
use crate::grpc_health::health_check_response::ServingStatus;
use crate::grpc_health::health_client::HealthClient;
use crate::time::go_duration;

/// A probe's (or hook's) outcome: success, or failure with the kubelet's message.
pub type Outcome = Result<(), String>;

/// A port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port number: {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name))
        }
    }
}

/// HTTP GET: 200–399 is success.
pub async fn http_get(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
    timeout: Duration,
) -> Outcome {
    let port = resolve_port(&action.port, container)?;
    let host = action
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod_ip.to_string());
    let path = action
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let scheme = action.scheme.as_deref().unwrap_or("HTTP");
    let url = format!("{}://{host}:{port}{path}", scheme.to_lowercase());
    if scheme.eq_ignore_ascii_case("HTTPS") {
        return Err(format!(
            "Get \"{url}\": niwa's HTTP probes do not speak TLS"
        ));
    }
    let attempt = async {
        let mut stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| {
                format!(
                    "Get \"{url}\": dial tcp {host}:{port}: connect: {}",
                    io_reason(&e)
                )
            })?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for h in action.http_headers.iter().flatten() {
            request.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if n == 0 {
                return Err(format!("Get \"{url}\": EOF"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => e.to_string(),
    }
}

/// TCP connect.
pub async fn tcp_socket(
    action: &TCPSocketAction,
    container: &Container,
    pod_ip: &str,
    timeout: Duration,
) -> Outcome {
    let port = resolve_port(&action.port, container)?;
    let host = action
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod_ip.to_string());
    match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "dial tcp {host}:{port}: connect: {}",
            io_reason(&e)
        )),
        Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// gRPC: `grpc.health.v1.Health/Check` of `service` (default "") on the pod IP and `port`,
/// plaintext; SERVING is success. Like the kubelet (pkg/probe/grpc), the connection is retried
/// until the timeout (gRPC's blocking dial), and the messages are its messages.
pub async fn grpc(action: &GRPCAction, pod_ip: &str, timeout: Duration) -> Outcome {
    let port = u16::try_from(action.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port number: {}", action.port))?;
    let addr = format!("{pod_ip}:{port}");
    let within = go_duration(timeout);
    let deadline = tokio::time::Instant::now() + timeout;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?
        .user_agent("kube-probe/1.33")
        .map_err(|e| format!("error: failed to connect service at {addr:?}: {e}"))?;
    let connect = async {
        loop {
            match endpoint.connect().await {
                Ok(channel) => return channel,
                // Refused or reset: the server may be starting; gRPC's blocking dial retries.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    let Ok(channel) = tokio::time::timeout_at(deadline, connect).await else {
        return Err(format!(
            "timeout: failed to connect service {addr:?} within {within}: context deadline exceeded"
        ));
    };
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: action.service.clone().unwrap_or_default(),
    });
    request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
    let rpc_timeout = || format!("timeout: health rpc did not complete within {within}");
    let response = match tokio::time::timeout_at(
        deadline,
        HealthClient::new(channel).check(request),
    )
    .await
    {
        Err(_) => return Err(rpc_timeout()),
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            return Err(match status.code() {
                tonic::Code::Unimplemented => format!(
                    "this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                    status.message()
                ),
                tonic::Code::DeadlineExceeded => rpc_timeout(),
                code => format!(
                    "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                    status.message()
                ),
            });
        }
    };
    match response.status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!(
            "service unhealthy (responded with {:?})",
            other.as_str_name()
        )),
    }
}

/// Runs a command in the container; exit code 0 is success, else its output is the message.
pub async fn exec(action: &ExecAction, exe: &Path, pid: u32, timeout: Duration) -> Outcome {
    let command = action.command.clone().unwrap_or_default();
    if command.is_empty() {
        return Err("exec probe has no command".to_string());
    }
    let child = tokio::process::Command::new(exe)
        .arg("enter")
        .arg("--join")
        .arg(pid.to_string())
        .arg("--")
        .args(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run the exec probe: {e}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            if out.status.success() {
                Ok(())
            } else {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                Err(text.trim_end().to_string())
            }
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("command {:?} timed out", command.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `grpc.health.v1` server (agnhost's) on a free loopback port; its status switch.
    async fn health_server(service: &str) -> (u16, tokio::sync::watch::Sender<ServingStatus>) {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let status = tokio::sync::watch::Sender::new(ServingStatus::Serving);
        let server = tonic::transport::Server::builder()
            .add_service(crate::images::builtin::grpc_health::health_server(
                service,
                status.clone(),
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (port, status)
    }

    fn grpc_action(port: u16, service: Option<&str>) -> GRPCAction {
        GRPCAction {
            port: i32::from(port),
            service: service.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn grpc_probes_report_what_the_kubelet_reports() {
        let timeout = Duration::from_millis(500);
        let (port, status) = health_server("").await;
        assert_eq!(
            grpc(&grpc_action(port, None), "127.0.0.1", timeout).await,
            Ok(())
        );
        assert_eq!(
            grpc(&grpc_action(port, Some("")), "127.0.0.1", timeout).await,
            Ok(())
        );
        status.send_replace(ServingStatus::NotServing);
        assert_eq!(
            grpc(&grpc_action(port, None), "127.0.0.1", timeout).await,
            Err("service unhealthy (responded with \"NOT_SERVING\")".to_string())
        );
        assert_eq!(
            grpc(&grpc_action(port, Some("db")), "127.0.0.1", timeout).await,
            Err(
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                    .to_string()
            )
        );
        // Nothing listens: gRPC's blocking dial gives up at the probe's timeout.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string());
            l.and_then(|l| l.local_addr().map_err(|e| e.to_string()))
                .map(|a| a.port())
                .unwrap_or(1)
        };
        let started = std::time::Instant::now();
        assert_eq!(
            grpc(&grpc_action(closed, None), "127.0.0.1", timeout).await,
            Err(format!(
                "timeout: failed to connect service \"127.0.0.1:{closed}\" within 500ms: context deadline exceeded"
            ))
        );
        assert!(started.elapsed() >= timeout);
        assert_eq!(
            grpc(&grpc_action(0, None), "127.0.0.1", timeout).await,
            Err("invalid port number: 0".to_string())
        );
    }

    #[tokio::test]
    async fn http_and_tcp_probes() {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            let mut codes = [200u16, 500].into_iter().cycle();
            while let Ok((mut s, _)) = listener.accept().await {
                let code = codes.next().unwrap_or(200);
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let container = Container {
            name: "app".into(),
            ports: Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                name: Some("http".into()),
                container_port: i32::from(port),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let action = HTTPGetAction {
            port: IntOrString::String("http".into()),
            path: Some("/healthz".into()),
            ..Default::default()
        };
        let t = Duration::from_secs(5);
        assert_eq!(http_get(&action, &container, "127.0.0.1", t).await, Ok(()));
        assert_eq!(
            http_get(&action, &container, "127.0.0.1", t).await,
            Err("HTTP probe failed with statuscode: 500".into())
        );
        let tcp = TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            ..Default::default()
        };
        assert_eq!(tcp_socket(&tcp, &container, "127.0.0.1", t).await, Ok(()));
        let closed = TCPSocketAction {
            port: IntOrString::Int(1),
            ..Default::default()
        };
        let err = tcp_socket(&closed, &container, "127.0.0.1", t).await;
        assert_eq!(
            err,
            Err("dial tcp 127.0.0.1:1: connect: connection refused".into())
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &container).is_err());
    }
}
