//! niwa-proxy against a real apiserver: Services and EndpointSlices created through the API,
//! traffic through real sockets on the test's own 127.x block.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{
    Env, Mode, NODE, connect_name, connect_name_from, eventually, eventually_refused, wait_serving,
};
use niwa_client::{DeleteParams, Patch};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// Each case runs against both data paths (modules `userspace` and `nftables` at the end).
async fn start(mode: Mode) -> Option<Env> {
    match mode {
        Mode::Nftables => Env::start_nft().await,
        _ => Some(Env::start_mode(mode).await),
    }
}

fn port_of(seed: u8) -> u16 {
    20_000 + u16::from(seed) * 100 + (std::process::id() % 100) as u16
}

async fn cluster_ip_balances_over_all_endpoints_and_refuses_without_any(mode: Mode) {
    let Some(mut env) = start(mode).await else {
        return;
    };
    let pods = [env.pod_ip(1), env.pod_ip(2), env.pod_ip(3)];
    let target = env.tcp_backends(&pods).await;
    let (vip, port) = (env.cluster_ip(10), port_of(env.block));
    env.create_service(
        "web",
        json!({"clusterIP": vip.to_string(), "clusterIPs": [vip.to_string()],
               "ports": [{"name": "http", "port": port, "targetPort": target}]}),
    )
    .await;
    let addr = SocketAddr::new(vip, port);
    // No EndpointSlice yet: the address refuses at once, as kube-proxy's REJECT does.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = tokio::net::TcpStream::connect(addr)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    let eps: Vec<(IpAddr, bool, &str)> = pods.iter().map(|ip| (*ip, true, NODE)).collect();
    env.put_slice("web-1", "web", &[("http", target, "TCP")], &eps)
        .await;
    wait_serving(addr).await;
    let mut seen = BTreeSet::new();
    for _ in 0..9 {
        let (name, mut stream) = connect_name(addr).await.expect("connect");
        stream.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"ping");
        seen.insert(name);
    }
    let want: BTreeSet<String> = pods.iter().map(|ip| format!("backend-{ip}")).collect();
    assert_eq!(seen, want, "round robin reaches every endpoint");

    // Every endpoint gone (not ready): refused again.
    let eps: Vec<(IpAddr, bool, &str)> = pods.iter().map(|ip| (*ip, false, NODE)).collect();
    env.put_slice("web-1", "web", &[("http", target, "TCP")], &eps)
        .await;
    eventually_refused("connections to be refused", addr).await;

    let metrics = env.metrics_text().await;
    assert!(metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds_count"));
    if mode == Mode::Nftables {
        // The kernel forwards: no per-connection metrics, but the table's size is reported.
        assert!(metrics.contains("niwa_proxy_nft_rules "), "{metrics}");
        // Every transaction went through as rendered (a failed one is retried as a rebuild,
        // which would hide a rendering bug behind working traffic).
        assert!(
            metrics.contains("niwa_proxy_nft_sync_failures_total 0"),
            "{metrics}"
        );
        assert!(
            metrics.contains("niwa_proxy_mode{mode=\"nftables\""),
            "{metrics}"
        );
        return;
    }
    assert!(
        metrics.contains(
            "niwa_proxy_connections_total{service=\"default/web:http\",protocol=\"TCP\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds_count"));
    assert!(metrics.contains("niwa_proxy_bytes_total{service=\"default/web:http\",protocol=\"TCP\",direction=\"to_client\"}"));
}

async fn endpoint_change_is_live_fast_and_keeps_established_connections(mode: Mode) {
    let Some(mut env) = start(mode).await else {
        return;
    };
    let (a, b) = (env.pod_ip(1), env.pod_ip(2));
    let port = port_of(env.block) + 1;
    let (addr, target) = env.service_on_first_pod("api", 11, port, &[a, b]).await;
    let (_, mut long_lived) = connect_name(addr).await.expect("connect");

    // Move the Service from a to b: new connections reach b quickly, the old one keeps working.
    let changed = Instant::now();
    env.put_slice(
        "api-1",
        "api",
        &[("http", target, "TCP")],
        &[(b, true, NODE)],
    )
    .await;
    eventually(
        "new connections to reach b",
        Duration::from_secs(5),
        || async {
            match connect_name(addr).await {
                Ok((name, _)) if name == format!("backend-{b}") => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let took = changed.elapsed();
    eprintln!("endpoint change live after {took:?} (including the API write)");
    for _ in 0..5 {
        let (name, _) = connect_name(addr).await.expect("connect");
        assert_eq!(name, format!("backend-{b}"));
    }
    long_lived.write_all(b"still here").await.expect("write");
    let mut buf = [0u8; 10];
    long_lived
        .read_exact(&mut buf)
        .await
        .expect("established connection survives");
    assert_eq!(&buf, b"still here");

    // Deleting the Service closes its listener; the established connection still lives.
    env.services()
        .delete("api", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the listener to close", Duration::from_secs(5), || async {
        tokio::net::TcpStream::connect(addr).await.err().map(|_| ())
    })
    .await;
    long_lived.write_all(b"after del!").await.expect("write");
    long_lived
        .read_exact(&mut buf)
        .await
        .expect("survives Service deletion");
    assert_eq!(&buf, b"after del!");
}

async fn session_affinity_client_ip_pins_each_client(mode: Mode) {
    let Some(mut env) = start(mode).await else {
        return;
    };
    let pods = [env.pod_ip(1), env.pod_ip(2), env.pod_ip(3)];
    let target = env.tcp_backends(&pods).await;
    let (vip, port) = (env.cluster_ip(12), port_of(env.block) + 2);
    env.create_service(
        "sticky",
        json!({"clusterIP": vip.to_string(), "sessionAffinity": "ClientIP",
               "ports": [{"name": "http", "port": port, "targetPort": target}]}),
    )
    .await;
    let eps: Vec<(IpAddr, bool, &str)> = pods.iter().map(|ip| (*ip, true, NODE)).collect();
    env.put_slice("sticky-1", "sticky", &[("http", target, "TCP")], &eps)
        .await;
    let addr = SocketAddr::new(vip, port);
    wait_serving(addr).await;
    let mut chosen = BTreeSet::new();
    for client in 1..=10u8 {
        let local: IpAddr = format!("127.33.{}.{client}", env.block)
            .parse()
            .expect("ip");
        let (first, _) = connect_name_from(addr, Some(local)).await.expect("connect");
        for _ in 0..4 {
            let (again, _) = connect_name_from(addr, Some(local)).await.expect("connect");
            assert_eq!(again, first, "client {local} stays on its backend");
        }
        chosen.insert(first);
    }
    assert!(chosen.len() > 1, "different clients are spread: {chosen:?}");
}

async fn node_port_load_balancer_and_external_ips_with_traffic_policy_local(mode: Mode) {
    let Some(mut env) = start(mode).await else {
        return;
    };
    let (local, remote) = (env.pod_ip(1), env.pod_ip(2));
    let target = env.tcp_backends(&[local, remote]).await;
    let vip = env.cluster_ip(13);
    let lb = env.lb_ip(1);
    let external = env.lb_ip(77);
    let port = port_of(env.block) + 3;
    let node_port = 30_000 + u16::from(env.block) * 10;
    env.create_service(
        "edge",
        json!({"type": "LoadBalancer", "clusterIP": vip.to_string(),
               "externalIPs": [external.to_string()], "externalTrafficPolicy": "Local",
               "ports": [{"name": "http", "port": port, "targetPort": target, "nodePort": node_port}]}),
    )
    .await;
    // The LoadBalancer controller's job, done by hand: status.loadBalancer.ingress.
    env.services()
        .patch_status(
            "edge",
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": lb.to_string()}]}}}),
            ),
        )
        .await
        .expect("status");
    env.put_slice(
        "edge-1",
        "edge",
        &[("http", target, "TCP")],
        &[(local, true, NODE), (remote, true, "node-b")],
    )
    .await;
    let local_name = format!("backend-{local}");
    for addr in [
        SocketAddr::new(env.node_ip, node_port),
        SocketAddr::new(lb, port),
        SocketAddr::new(external, port),
    ] {
        wait_serving(addr).await;
        // externalTrafficPolicy Local: only this node's endpoint.
        for _ in 0..4 {
            let (name, _) = connect_name(addr).await.expect("connect");
            assert_eq!(name, local_name, "{addr}");
        }
    }
    // The ClusterIP is internal traffic: both endpoints.
    let addr = SocketAddr::new(vip, port);
    wait_serving(addr).await;
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(connect_name(addr).await.expect("connect").0);
    }
    assert_eq!(seen.len(), 2);
}

async fn udp_flows_reach_endpoints_and_replies_come_from_the_service_address(mode: Mode) {
    let Some(mut env) = start(mode).await else {
        return;
    };
    let (a, b) = (env.pod_ip(1), env.pod_ip(2));
    let target = env.udp_backends(&[a, b]).await;
    let (vip, port) = (env.cluster_ip(14), port_of(env.block) + 4);
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
        &[(a, true, NODE), (b, true, NODE)],
    )
    .await;
    let service = SocketAddr::new(vip, port);
    let ask = |local: IpAddr| async move {
        let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await.ok()?;
        socket.connect(service).await.ok()?;
        socket.send(b"q").await.ok()?;
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    let client = |n: u8| -> IpAddr { format!("127.34.{}.{n}", env.block).parse().expect("ip") };
    eventually("UDP to answer", Duration::from_secs(10), || ask(client(1))).await;
    let mut seen = BTreeSet::new();
    for n in 2..8 {
        let reply = ask(client(n))
            .await
            .expect("reply (connected socket: from the ClusterIP)");
        assert!(reply.ends_with(":q"), "{reply}");
        seen.insert(reply);
    }
    assert_eq!(seen.len(), 2, "flows spread over both endpoints: {seen:?}");

    // One flow keeps its endpoint; when that endpoint goes, the flow moves at once.
    let socket = UdpSocket::bind(SocketAddr::new(client(9), 0))
        .await
        .expect("bind");
    socket.connect(service).await.expect("connect");
    let mut buf = [0u8; 256];
    socket.send(b"1").await.expect("send");
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("a reply within 5 s")
        .expect("recv");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    let (stay, gone) = if first.starts_with(&format!("backend-{a}")) {
        (b, a)
    } else {
        (a, b)
    };
    env.put_slice(
        "dns-1",
        "dns",
        &[("dns", target, "UDP")],
        &[(stay, true, NODE)],
    )
    .await;
    eventually(
        "the flow to move to the remaining endpoint",
        Duration::from_secs(5),
        || async {
            socket.send(b"2").await.ok()?;
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            reply.starts_with(&format!("backend-{stay}:")).then_some(())
        },
    )
    .await;
    let _ = gone;
}

mod userspace {
    use super::Mode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_ip_balances_over_all_endpoints_and_refuses_without_any() {
        super::cluster_ip_balances_over_all_endpoints_and_refuses_without_any(Mode::Userspace)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endpoint_change_is_live_fast_and_keeps_established_connections() {
        super::endpoint_change_is_live_fast_and_keeps_established_connections(Mode::Userspace)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_affinity_client_ip_pins_each_client() {
        super::session_affinity_client_ip_pins_each_client(Mode::Userspace).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_port_load_balancer_and_external_ips_with_traffic_policy_local() {
        super::node_port_load_balancer_and_external_ips_with_traffic_policy_local(Mode::Userspace)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_flows_reach_endpoints_and_replies_come_from_the_service_address() {
        super::udp_flows_reach_endpoints_and_replies_come_from_the_service_address(Mode::Userspace)
            .await;
    }
}

mod nftables {
    use super::Mode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_ip_balances_over_all_endpoints_and_refuses_without_any() {
        super::cluster_ip_balances_over_all_endpoints_and_refuses_without_any(Mode::Nftables).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endpoint_change_is_live_fast_and_keeps_established_connections() {
        super::endpoint_change_is_live_fast_and_keeps_established_connections(Mode::Nftables).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_affinity_client_ip_pins_each_client() {
        super::session_affinity_client_ip_pins_each_client(Mode::Nftables).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn node_port_load_balancer_and_external_ips_with_traffic_policy_local() {
        super::node_port_load_balancer_and_external_ips_with_traffic_policy_local(Mode::Nftables)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_flows_reach_endpoints_and_replies_come_from_the_service_address() {
        super::udp_flows_reach_endpoints_and_replies_come_from_the_service_address(Mode::Nftables)
            .await;
    }
}
