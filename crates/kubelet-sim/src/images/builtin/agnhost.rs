//! The `agnhost` built-in image: the subcommands of Kubernetes' e2e test image that users reach
//! for when they learn Services, DNS and probes.
//!
//! | subcommand | what it does |
//! |---|---|
//! | `netexec [--http-port=8080] [--udp-port=8081]` | HTTP: `/` (time), `/hostname`, `/echo?msg=`, `/clientip`, `/header?key=`, `/shell?cmd=` (JSON `{"output": ...}`), `/exit?code=`, `/healthz`, `/readyz`; niwa adds `/sethealth?code=` and `/setready?code=` to make probes fail on demand. UDP: `hostname`, `echo <msg>`, `clientip` |
//! | `serve-hostname [--port=9376]` | answers every HTTP request with the hostname (the pod name) |
//! | `liveness` | `/healthz` on 8080: 200 for 10 s, then 500 (Kubernetes' liveness example) |
//! | `test-webserver [--port=80]` | `/`: `Hello World!` |
//! | `pause` | nothing, until stopped |
//! | `dns-server-list`, `dns-suffix`, `etc-hosts` | print the nameservers, search domains, /etc/hosts |
//! | `nslookup <name>` (niwa) | resolves a name through the pod's resolver; exit 1 when it does not resolve |
//! | `connect <host:port> [--timeout=5s]` | exit 0 when a TCP connection succeeds, 1 otherwise |
//! | `grpc-health-checking [--port=5000] [--http-port=8080] [--service=] [--delay-unhealthy-sec=-1]` | `grpc.health.v1.Health` for gRPC probes; HTTP `/make-serving`, `/make-not-serving` flip it ([`super::grpc_health`]) |

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::{USAGE, bind, hostname, pod_ip, serve_until_stopped, stopped};
use crate::time::parse_go_duration;

/// `--name=value` or `--name value` flags; positional arguments in order.
fn flags(args: &[String]) -> (HashMap<String, String>, Vec<String>) {
    let mut named = HashMap::new();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(flag) = args[i]
            .strip_prefix("--")
            .or_else(|| args[i].strip_prefix('-'))
        {
            if let Some((k, v)) = flag.split_once('=') {
                named.insert(k.to_string(), v.to_string());
            } else if i + 1 < args.len() && !args[i + 1].starts_with('-') {
                named.insert(flag.to_string(), args[i + 1].clone());
                i += 1;
            } else {
                named.insert(flag.to_string(), "true".to_string());
            }
        } else {
            positional.push(args[i].clone());
        }
        i += 1;
    }
    (named, positional)
}

fn port(named: &HashMap<String, String>, key: &str, default: u16) -> u16 {
    named
        .get(key)
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

pub async fn main(args: &[String]) -> i32 {
    let Some((sub, rest)) = args.split_first() else {
        eprintln!(
            "Usage: agnhost <subcommand> [flags]; subcommands: netexec, serve-hostname, liveness, test-webserver, pause, dns-server-list, dns-suffix, etc-hosts, nslookup, connect, grpc-health-checking"
        );
        return USAGE;
    };
    let (named, positional) = flags(rest);
    match sub.as_str() {
        "netexec" => {
            netexec(
                port(&named, "http-port", 8080),
                port(&named, "udp-port", 8081),
            )
            .await
        }
        "serve-hostname" => serve_text(port(&named, "port", 9376), hostname()).await,
        "test-webserver" => serve_text(port(&named, "port", 80), "Hello World!".to_string()).await,
        "liveness" => liveness().await,
        "grpc-health-checking" => super::grpc_health::main(&named).await,
        "pause" => {
            stopped().await;
            0
        }
        "dns-server-list" | "dns-suffix" => {
            let key = if sub == "dns-server-list" {
                "nameserver"
            } else {
                "search"
            };
            let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let values: Vec<&str> = conf
                .lines()
                .filter_map(|l| l.strip_prefix(key))
                .flat_map(|v| v.split_whitespace())
                .collect();
            println!("{}", values.join(" "));
            0
        }
        "etc-hosts" => {
            print!(
                "{}",
                std::fs::read_to_string("/etc/hosts").unwrap_or_default()
            );
            0
        }
        "nslookup" => {
            let Some(name) = positional.first() else {
                eprintln!("Usage: agnhost nslookup <name>");
                return USAGE;
            };
            let target = name.clone();
            let resolved = tokio::task::spawn_blocking(move || {
                (target.as_str(), 0)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
            })
            .await;
            match resolved {
                Ok(Ok(addrs)) if !addrs.is_empty() => {
                    println!("Name:\t{name}");
                    for a in addrs {
                        println!("Address: {}", a.ip());
                    }
                    0
                }
                Ok(Err(e)) => {
                    println!("** server can't find {name}: {e}");
                    1
                }
                _ => {
                    println!("** server can't find {name}: NXDOMAIN");
                    1
                }
            }
        }
        "connect" => {
            let Some(target) = positional.first() else {
                eprintln!("Usage: agnhost connect <host:port> [--timeout=5s]");
                return USAGE;
            };
            let timeout = named
                .get("timeout")
                .and_then(|t| parse_go_duration(t))
                .unwrap_or(Duration::from_secs(5));
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target.as_str()))
                .await
            {
                Ok(Ok(_)) => 0,
                Ok(Err(e)) => {
                    eprintln!("TIMEOUT or error connecting to {target}: {e}");
                    1
                }
                Err(_) => {
                    eprintln!("TIMEOUT connecting to {target}");
                    1
                }
            }
        }
        other => {
            eprintln!("agnhost: unknown subcommand {other:?}");
            USAGE
        }
    }
}

async fn serve_text(port: u16, text: String) -> i32 {
    let listener = match bind(port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    eprintln!("Serving on {}:{port}", pod_ip());
    let router = Router::new().fallback(move || {
        let text = text.clone();
        async move { text }
    });
    serve_until_stopped(listener, router).await
}

async fn liveness() -> i32 {
    let listener = match bind(8080).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let started = Instant::now();
    let router = Router::new().route(
        "/healthz",
        get(move || async move {
            let d = started.elapsed();
            if d > Duration::from_secs(10) {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("error: {:.3}s", d.as_secs_f64()),
                )
            } else {
                (StatusCode::OK, "ok".to_string())
            }
        }),
    );
    serve_until_stopped(listener, router).await
}

#[derive(Debug)]
struct NetexecState {
    health: AtomicU16,
    ready: AtomicU16,
}

async fn netexec(http_port: u16, udp_port: u16) -> i32 {
    let listener = match bind(http_port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let udp = tokio::net::UdpSocket::bind(SocketAddr::new(pod_ip(), udp_port)).await;
    match udp {
        Ok(sock) => {
            tokio::spawn(udp_server(sock));
        }
        Err(e) => eprintln!("UDP server on port {udp_port} not started: {e}"),
    }
    eprintln!("Started HTTP server on port {http_port}, UDP server on port {udp_port}");
    let state = Arc::new(NetexecState {
        health: AtomicU16::new(200),
        ready: AtomicU16::new(200),
    });
    let s1 = state.clone();
    let s2 = state.clone();
    let s3 = state.clone();
    let s4 = state;
    let router = Router::new()
        .route(
            "/",
            get(|| async { format!("NOW: {}", jiff::Timestamp::now()) }),
        )
        .route("/hostname", get(|| async { hostname() }))
        .route("/hostName", get(|| async { hostname() }))
        .route(
            "/echo",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                q.get("msg").cloned().unwrap_or_default()
            }),
        )
        .route(
            "/clientip",
            get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
        )
        .route(
            "/header",
            get(
                |Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                    q.get("key")
                        .and_then(|k| headers.get(k.as_str()))
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                },
            ),
        )
        .route("/shell", get(shell).post(shell))
        .route(
            "/exit",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let code: i32 = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(0);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    std::process::exit(code);
                });
                format!("exiting with code {code}")
            }),
        )
        .route(
            "/healthz",
            get(move || async move { status_reply(s1.health.load(Ordering::Relaxed)) }),
        )
        .route(
            "/readyz",
            get(move || async move { status_reply(s2.ready.load(Ordering::Relaxed)) }),
        )
        .route(
            "/sethealth",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(200);
                s3.health.store(code, Ordering::Relaxed);
                format!("healthz now answers {code}")
            }),
        )
        .route(
            "/setready",
            get(move |Query(q): Query<HashMap<String, String>>| async move {
                let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(200);
                s4.ready.store(code, Ordering::Relaxed);
                format!("readyz now answers {code}")
            }),
        );
    serve_until_stopped(listener, router).await
}

fn status_reply(code: u16) -> impl IntoResponse {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        if status.is_success() {
            "ok".to_string()
        } else {
            format!("status {code}")
        },
    )
}

async fn shell(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    let Some(cmd) = q.get("cmd").cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "missing cmd"})),
        );
    };
    let out = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .await;
    match out {
        Ok(o) => {
            let mut output = String::from_utf8_lossy(&o.stdout).to_string();
            output.push_str(&String::from_utf8_lossy(&o.stderr));
            if o.status.success() {
                (StatusCode::OK, axum::Json(json!({"output": output})))
            } else {
                (
                    StatusCode::OK,
                    axum::Json(
                        json!({"output": output, "error": format!("exit status {}", o.status.code().unwrap_or(-1))}),
                    ),
                )
            }
        }
        Err(e) => (StatusCode::OK, axum::Json(json!({"error": e.to_string()}))),
    }
}

async fn udp_server(sock: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            return;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        let reply = match msg.split_once(' ') {
            Some(("echo", rest)) => rest.to_string(),
            _ if msg == "hostname" || msg == "hostName" => hostname(),
            _ if msg == "clientip" => from.to_string(),
            _ => format!("unknown command {msg:?}"),
        };
        let _ = sock.send_to(reply.as_bytes(), from).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_forms() {
        let args: Vec<String> = ["--http-port=9000", "--udp-port", "9001", "-v", "name"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (named, positional) = flags(&args);
        assert_eq!(port(&named, "http-port", 1), 9000);
        assert_eq!(port(&named, "udp-port", 1), 9001);
        assert_eq!(named.get("v").map(String::as_str), Some("name"));
        assert!(positional.is_empty());
    }
}
