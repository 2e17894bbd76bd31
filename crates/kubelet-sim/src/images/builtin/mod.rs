//! The built-in images, run as `niwa-kubelet image <name> [args...]` inside the container (so they
//! see its root, hostname and environment). They bind the pod's IP (`POD_IP`, which the kubelet
//! sets in every container), so two pods can serve the same port side by side.
//!
//! * `nginx`, `httpd` — a web server on port 80 (or the container's first declared TCP port),
//!   serving the document root if one is mounted and otherwise a page that names the pod.
//! * `agnhost` — Kubernetes' test image: `netexec`, `serve-hostname`, `liveness`, `pause`,
//!   `test-webserver`, `dns-server-list`, `dns-suffix`, `etc-hosts`, `connect`, and the niwa
//!   addition `nslookup` (see [`agnhost`]).
//! * `pause` — does nothing until stopped.

pub mod agnhost;
pub mod grpc_health;
pub mod web;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Exit code for a bad invocation.
pub const USAGE: i32 = 2;

/// Runs built-in image `name` with `args`; returns the process exit code.
pub fn run(name: &str, args: &[String]) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        match name {
            "nginx" => web::serve(web::Flavor::Nginx).await,
            "httpd" => web::serve(web::Flavor::Httpd).await,
            "pause" => {
                stopped().await;
                0
            }
            "agnhost" => agnhost::main(args).await,
            other => {
                eprintln!("niwa has no built-in image {other:?}");
                USAGE
            }
        }
    })
}

/// The pod's IP (the address built-in servers bind), 127.0.0.1 without one.
pub fn pod_ip() -> IpAddr {
    std::env::var("POD_IP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The container's hostname (the pod's name, as in Kubernetes).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_default()
}

/// The first TCP containerPort the pod declared for this container (`NIWA_CONTAINER_PORTS`).
pub fn declared_port() -> Option<u16> {
    std::env::var("NIWA_CONTAINER_PORTS")
        .ok()?
        .split(',')
        .find_map(|p| p.trim().parse().ok())
}

/// Resolves when the process is asked to stop (SIGTERM or SIGINT).
pub async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// Binds `port` on the pod IP, with the hint Kubernetes users need for low ports.
pub async fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let addr = SocketAddr::new(pod_ip(), port);
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if port < 1024 && e.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or sysctl net.ipv4.ip_unprivileged_port_start=0)"
        } else {
            ""
        };
        std::io::Error::new(e.kind(), format!("listen on {addr}: {e}{hint}"))
    })
}

/// Serves `router` on `listener` until the process is asked to stop; exit code 0.
pub async fn serve_until_stopped(listener: tokio::net::TcpListener, router: axum::Router) -> i32 {
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        stopped().await;
    });
    match server.await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("server error: {e}");
            1
        }
    }
}
