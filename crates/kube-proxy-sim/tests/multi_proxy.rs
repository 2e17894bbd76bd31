//! Two niwa-proxy instances on one host, as `niwa up` runs one per node: node A's in-process,
//! node B's as a real `niwa-proxy` child process. ClusterIP, LoadBalancer and externalIP
//! listeners are shared through `SO_REUSEPORT` (the kernel spreads connections over both), each
//! NodePort belongs to its node's IP, ClientIP affinity holds whichever proxy the kernel picks,
//! UDP flows keep their proxy, and when one proxy dies the other serves alone. Userspace mode:
//! in nftables mode the kernel, not a proxy socket, takes the connection (see nft_multi.rs).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Env, NODE, connect_name, connect_name_from, eventually, metric_sum, metrics_at, wait_serving,
};
use niwa_client::Patch;
use serde_json::json;
use tokio::net::{TcpStream, UdpSocket};

/// Node B's proxy process, killed (by PID) when dropped.
struct ProxyProcess(Child);

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn port_of(block: u8) -> u16 {
    20_050 + u16::from(block) * 100 + (std::process::id() % 50) as u16
}

const CONNECTIONS: &str = "niwa_proxy_connections_total";

/// Sends `payload` on a connected UDP socket and returns the reply, if one comes within 2 s (a
/// loaded 2-core machine runs debug builds of both proxies).
async fn ask(socket: &UdpSocket, payload: &[u8]) -> Option<String> {
    socket.send(payload).await.ok()?;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Starts node B's `niwa-proxy` process against `env`'s apiserver; returns once it serves metrics.
async fn start_proxy_b(env: &Env, node_ip: IpAddr, metrics: SocketAddr) -> ProxyProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_niwa-proxy"))
        .args(["--apiserver", &env.cp.api_url()])
        .args(["--node-name", "node-b"])
        .args(["--node-ip", &node_ip.to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--mode", "userspace"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start niwa-proxy");
    let process = ProxyProcess(child);
    eventually(
        "node B's proxy to serve metrics",
        Duration::from_secs(10),
        || async move { TcpStream::connect(metrics).await.ok() },
    )
    .await;
    process
}

/// Connections (or UDP flows) of `service` each proxy has accepted so far: (node A, node B).
async fn served(env: &Env, metrics_b: SocketAddr, service: &str) -> (f64, f64) {
    let label = format!("service=\"default/{service}\"");
    (
        metric_sum(&env.metrics_text().await, CONNECTIONS, &label),
        metric_sum(&metrics_at(metrics_b).await, CONNECTIONS, &label),
    )
}

/// Runs `probe` (one new connection or flow per call) until both proxies have served `service`:
/// then both have its listener open. (Listener counts cannot tell: the apiserver's own
/// `kubernetes` Service is programmed too.)
async fn wait_both_serve<F, Fut>(env: &Env, metrics_b: SocketAddr, service: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = Instant::now();
    loop {
        probe().await;
        let (a, b) = served(env, metrics_b, service).await;
        if a > 0.0 && b > 0.0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{service} not served by both proxies: {a} {b}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_host_share_service_addresses() {
    let mut env = Env::start().await;
    let node_b_ip = IpAddr::V4(Ipv4Addr::new(127, 1, env.block, 2));
    let metrics_b = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port());
    let mut proxy_b = start_proxy_b(&env, node_b_ip, metrics_b).await;
    let (pod_a, pod_b) = (env.pod_ip(1), env.pod_ip(2));
    let target = env.tcp_backends(&[pod_a, pod_b]).await;
    let (vip, sticky_vip, lb, external) = (
        env.cluster_ip(20),
        env.cluster_ip(21),
        env.lb_ip(1),
        env.lb_ip(77),
    );
    let port = port_of(env.block);
    let node_port = 30_000 + u16::from(env.block) * 10 + 5;
    env.create_service(
        "shared",
        json!({"type": "LoadBalancer", "clusterIP": vip.to_string(),
               "externalIPs": [external.to_string()],
               "ports": [{"name": "http", "port": port, "targetPort": target, "nodePort": node_port}]}),
    )
    .await;
    env.services()
        .patch_status(
            "shared",
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": lb.to_string()}]}}}),
            ),
        )
        .await
        .expect("status");
    env.create_service(
        "sticky",
        json!({"clusterIP": sticky_vip.to_string(), "sessionAffinity": "ClientIP",
               "ports": [{"name": "http", "port": port, "targetPort": target}]}),
    )
    .await;
    let endpoints = [(pod_a, true, NODE), (pod_b, true, "node-b")];
    for service in ["shared", "sticky"] {
        env.put_slice(
            &format!("{service}-1"),
            service,
            &[("http", target, "TCP")],
            &endpoints,
        )
        .await;
    }

    let cluster = SocketAddr::new(vip, port);
    let node_port_a = SocketAddr::new(env.node_ip, node_port);
    let node_port_b = SocketAddr::new(node_b_ip, node_port);
    let sticky_addr = SocketAddr::new(sticky_vip, port);
    for addr in [
        cluster,
        SocketAddr::new(lb, port),
        SocketAddr::new(external, port),
        node_port_a,
        node_port_b,
        sticky_addr,
    ] {
        wait_serving(addr).await;
    }
    // Both proxies serve both ClusterIPs, and nothing failed to bind on the shared addresses.
    for (service, addr) in [("shared:http", cluster), ("sticky:http", sticky_addr)] {
        wait_both_serve(&env, metrics_b, service, || async move {
            let _ = connect_name(addr).await;
        })
        .await;
    }
    for text in [env.metrics_text().await, metrics_at(metrics_b).await] {
        assert_eq!(
            metric_sum(&text, "niwa_proxy_listener_failures", ""),
            0.0,
            "{text}"
        );
    }

    // The kernel spreads ClusterIP connections over both proxies; every one reaches a pod.
    let before = served(&env, metrics_b, "shared:http").await;
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        seen.insert(connect_name(cluster).await.expect("connect").0);
    }
    assert_eq!(seen.len(), 2, "both endpoints: {seen:?}");
    let after = served(&env, metrics_b, "shared:http").await;
    let by = (after.0 - before.0, after.1 - before.1);
    assert_eq!(by.0 + by.1, 40.0, "{by:?}");
    assert!(by.0 > 0.0 && by.1 > 0.0, "both proxies serve: {by:?}");

    // A NodePort is its node's alone: B's node IP is served by B only.
    let before = served(&env, metrics_b, "shared:http").await;
    for _ in 0..5 {
        connect_name(node_port_b).await.expect("connect");
    }
    let after = served(&env, metrics_b, "shared:http").await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (0.0, 5.0));

    // ClientIP affinity: each client keeps its pod although its connections (each from a new
    // source port) land on either proxy.
    let before = served(&env, metrics_b, "sticky:http").await;
    let mut pinned = BTreeMap::new();
    for client in 1..=8u8 {
        let local: IpAddr = format!("127.35.{}.{client}", env.block)
            .parse()
            .expect("ip");
        for _ in 0..6 {
            let (name, _) = connect_name_from(sticky_addr, Some(local))
                .await
                .expect("connect");
            let first = pinned.entry(local).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "client {local} keeps its pod");
        }
    }
    let after = served(&env, metrics_b, "sticky:http").await;
    let by = (after.0 - before.0, after.1 - before.1);
    assert!(
        by.0 > 0.0 && by.1 > 0.0,
        "both proxies pinned clients: {by:?}"
    );

    // Node B's proxy dies: node A's serves the shared addresses alone, without a failure.
    let _ = proxy_b.0.kill();
    let _ = proxy_b.0.wait();
    for _ in 0..20 {
        connect_name(cluster).await.expect("served by node A alone");
        connect_name(SocketAddr::new(lb, port))
            .await
            .expect("served by node A alone");
    }
    let refused = TcpStream::connect(node_port_b)
        .await
        .expect_err("B's NodePort is gone");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    wait_serving(node_port_a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_flows_keep_their_proxy_when_two_share_a_cluster_ip() {
    let mut env = Env::start().await;
    let node_b_ip = IpAddr::V4(Ipv4Addr::new(127, 1, env.block, 2));
    let metrics_b = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port());
    let _proxy_b = start_proxy_b(&env, node_b_ip, metrics_b).await;
    let (a, b) = (env.pod_ip(1), env.pod_ip(2));
    let target = env.udp_backends(&[a, b]).await;
    let (vip, port) = (env.cluster_ip(22), port_of(env.block) + 1);
    env.create_service(
        "dns",
        json!({"clusterIP": vip.to_string(),
               "ports": [{"name": "dns", "port": port, "protocol": "UDP", "targetPort": target}]}),
    )
    .await;
    env.put_slice(
        "dns-1",
        "dns",
        &[("dns", target, "UDP")],
        &[(a, true, NODE), (b, true, "node-b")],
    )
    .await;
    let service = SocketAddr::new(vip, port);
    let mut probes = 0u8;
    wait_both_serve(&env, metrics_b, "dns:dns", || {
        probes = probes.wrapping_add(1);
        let local: IpAddr = format!("127.37.{}.{probes}", env.block)
            .parse()
            .expect("ip");
        async move {
            if let Ok(socket) = UdpSocket::bind(SocketAddr::new(local, 0)).await
                && socket.connect(service).await.is_ok()
            {
                let _ = ask(&socket, b"probe").await;
            }
        }
    })
    .await;
    let before = served(&env, metrics_b, "dns:dns").await;
    // Each flow (a connected client socket) gets every reply from the ClusterIP and stays on
    // one pod; flows are spread over both proxies.
    let mut sockets = Vec::new();
    for n in 1..=16u8 {
        let local: IpAddr = format!("127.36.{}.{n}", env.block).parse().expect("ip");
        let socket = UdpSocket::bind(SocketAddr::new(local, 0))
            .await
            .expect("bind");
        socket.connect(service).await.expect("connect");
        sockets.push(socket);
    }
    let mut pods = BTreeSet::new();
    for socket in &sockets {
        let first = ask(socket, b"1").await.expect("a reply");
        let pod = first.split(':').next().unwrap_or("").to_string();
        for _ in 0..3 {
            let again = ask(socket, b"2").await.expect("a reply");
            assert!(
                again.starts_with(&format!("{pod}:")),
                "{first} then {again}"
            );
        }
        pods.insert(pod);
    }
    assert_eq!(pods.len(), 2, "{pods:?}");
    let after = served(&env, metrics_b, "dns:dns").await;
    let (flows_a, flows_b) = (after.0 - before.0, after.1 - before.1);
    assert_eq!(flows_a + flows_b, 16.0, "one flow per client socket");
    assert!(flows_a > 0.0 && flows_b > 0.0, "{flows_a} {flows_b}");
}
