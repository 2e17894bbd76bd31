//! Golden cases for the desired-listener computation and the balancer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::balancer::{Balancer, rendezvous};
use super::desired::{Node, merge, service_listeners};
use super::{ListenerKey, ListenerKind, Protocol};

fn node() -> Node {
    Node {
        name: "n1".into(),
        ip: "127.1.0.1".parse().expect("ip"),
    }
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .expect("service")
}

/// A slice with endpoints `(ip, ready, serving, terminating, node)` on port `http`=8080/TCP.
fn slice(service: &str, endpoints: &[(&str, bool, bool, bool, &str)]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready, serving, terminating, node)| {
            json!({"addresses": [ip], "nodeName": node,
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints
    }))
    .expect("slice")
}

fn key(ip: &str, port: u16, protocol: Protocol) -> ListenerKey {
    ListenerKey {
        ip: ip.parse().expect("ip"),
        port,
        protocol,
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().expect("addr")).collect()
}

#[test]
fn cluster_ip_node_port_lb_and_external_ips() {
    let mut svc = service(
        "web",
        json!({"type": "LoadBalancer", "clusterIP": "127.96.0.20", "clusterIPs": ["127.96.0.20"],
               "externalIPs": ["127.0.50.1"],
               "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                         {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
    );
    svc.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "127.200.0.5"},
            {"ip": "127.200.0.6", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}}))
        .expect("status"),
    );
    let slices = [slice(
        "web",
        &[
            ("127.244.1.2", true, true, false, "n1"),
            ("127.244.2.2", true, true, false, "n2"),
        ],
    )];
    let out = service_listeners(&svc, &slices, &node());
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let got: Vec<(ListenerKey, ListenerKind, Vec<SocketAddr>)> = out
        .listeners
        .iter()
        .map(|(k, s)| (*k, s.kind, s.backends.to_vec()))
        .collect();
    let both_tcp = addrs(&["127.244.1.2:8080", "127.244.2.2:8080"]);
    let both_udp = addrs(&["127.244.1.2:5353", "127.244.2.2:5353"]);
    assert_eq!(
        got,
        vec![
            (
                key("127.96.0.20", 80, Protocol::Tcp),
                ListenerKind::ClusterIp,
                both_tcp.clone()
            ),
            (
                key("127.1.0.1", 30080, Protocol::Tcp),
                ListenerKind::NodePort,
                both_tcp.clone()
            ),
            (
                key("127.200.0.5", 80, Protocol::Tcp),
                ListenerKind::LoadBalancer,
                both_tcp.clone()
            ),
            (
                key("127.0.50.1", 80, Protocol::Tcp),
                ListenerKind::ExternalIp,
                both_tcp
            ),
            (
                key("127.96.0.20", 53, Protocol::Udp),
                ListenerKind::ClusterIp,
                both_udp.clone()
            ),
            (
                key("127.1.0.1", 30053, Protocol::Udp),
                ListenerKind::NodePort,
                both_udp.clone()
            ),
            (
                key("127.200.0.5", 53, Protocol::Udp),
                ListenerKind::LoadBalancer,
                both_udp.clone()
            ),
            (
                key("127.0.50.1", 53, Protocol::Udp),
                ListenerKind::ExternalIp,
                both_udp
            ),
        ]
    );
    assert_eq!(out.listeners[0].1.service.to_string(), "default/web:http");
}

#[test]
fn headless_external_name_and_foreign_proxy_get_nothing() {
    let ports = json!([{"name": "http", "port": 80}]);
    let slices = [slice("s", &[("127.244.1.2", true, true, false, "n1")])];
    for svc in [
        service("s", json!({"clusterIP": "None", "ports": ports})),
        service(
            "s",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    ] {
        assert!(
            service_listeners(&svc, &slices, &node())
                .listeners
                .is_empty()
        );
    }
    let mut foreign = service("s", json!({"clusterIP": "127.96.0.3", "ports": ports}));
    foreign.metadata.labels = Some(
        [(
            "service.kubernetes.io/service-proxy-name".to_string(),
            "other".to_string(),
        )]
        .into(),
    );
    assert!(
        service_listeners(&foreign, &slices, &node())
            .listeners
            .is_empty()
    );
    // A ClusterIP Service does not get a node port even if one is (wrongly) set.
    let plain = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}),
    );
    assert_eq!(
        service_listeners(&plain, &slices, &node()).listeners.len(),
        1
    );
}

#[test]
fn readiness_and_terminating_fallback() {
    let svc = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "ports": [{"name": "http", "port": 80}]}),
    );
    let backends = |eps: &[(&str, bool, bool, bool, &str)]| {
        let slices = [slice("s", eps)];
        service_listeners(&svc, &slices, &node()).listeners[0]
            .1
            .backends
            .to_vec()
    };
    // Not-ready endpoints are skipped.
    assert_eq!(
        backends(&[
            ("127.244.1.2", true, true, false, "n1"),
            ("127.244.1.3", false, false, false, "n1")
        ]),
        addrs(&["127.244.1.2:8080"])
    );
    // No ready endpoint: serving-and-terminating ones take the traffic.
    assert_eq!(
        backends(&[
            ("127.244.1.2", false, true, true, "n1"),
            ("127.244.1.3", false, false, true, "n1")
        ]),
        addrs(&["127.244.1.2:8080"])
    );
    // Nothing usable: the listener is kept with no backends (connections are refused).
    assert!(backends(&[("127.244.1.3", false, false, false, "n1")]).is_empty());
}

#[test]
fn traffic_policies_local() {
    let svc = service(
        "s",
        json!({"type": "NodePort", "clusterIP": "127.96.0.3", "externalTrafficPolicy": "Local",
               "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}),
    );
    let slices = [slice(
        "s",
        &[
            ("127.244.1.2", true, true, false, "n1"),
            ("127.244.2.2", true, true, false, "n2"),
        ],
    )];
    let out = service_listeners(&svc, &slices, &node());
    let by_kind = |kind| {
        out.listeners
            .iter()
            .find(|(_, s)| s.kind == kind)
            .map(|(_, s)| s.backends.to_vec())
            .expect("listener")
    };
    assert_eq!(by_kind(ListenerKind::ClusterIp).len(), 2);
    assert_eq!(
        by_kind(ListenerKind::NodePort),
        addrs(&["127.244.1.2:8080"])
    );

    let svc = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "internalTrafficPolicy": "Local",
               "ports": [{"name": "http", "port": 80}]}),
    );
    let other_node = Node {
        name: "n3".into(),
        ip: "127.1.0.3".parse().expect("ip"),
    };
    let out = service_listeners(&svc, &slices, &other_node);
    assert!(
        out.listeners[0].1.backends.is_empty(),
        "no local endpoint on n3"
    );
}

#[test]
fn ports_match_by_name_and_protocol_and_slices_dedupe() {
    let svc = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                                    {"name": "metrics", "port": 9153}]}),
    );
    let a = slice("s", &[("127.244.1.2", true, true, false, "n1")]);
    let mut b = slice(
        "s",
        &[
            ("127.244.1.2", false, false, false, "n1"),
            ("127.244.1.4", true, true, false, "n1"),
        ],
    );
    b.metadata.name = Some("s-def".into());
    let out = service_listeners(&svc, [&a, &b], &node());
    assert_eq!(out.listeners.len(), 2);
    assert_eq!(
        out.listeners[0].1.backends.to_vec(),
        addrs(&["127.244.1.2:5353", "127.244.1.4:5353"])
    );
    // No slice port named "metrics": the listener exists and refuses.
    assert!(out.listeners[1].1.backends.is_empty());
}

#[test]
fn sctp_and_bad_addresses_are_reported() {
    let svc = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "externalIPs": ["not-an-ip"],
               "ports": [{"name": "sctp", "port": 99, "protocol": "SCTP"}, {"name": "http", "port": 80}]}),
    );
    let out = service_listeners(&svc, &[], &node());
    assert_eq!(out.listeners.len(), 1);
    assert_eq!(out.problems.len(), 2, "{:?}", out.problems);
    assert!(out.problems[0].contains("SCTP"));
    assert!(out.problems[1].contains("not-an-ip"));
}

#[test]
fn conflicting_services_first_keeps_the_address() {
    let a = service(
        "a",
        json!({"clusterIP": "127.96.0.3", "externalIPs": ["127.0.50.1"], "ports": [{"port": 80}]}),
    );
    let b = service(
        "b",
        json!({"clusterIP": "127.96.0.4", "externalIPs": ["127.0.50.1"], "ports": [{"port": 80}]}),
    );
    let la = service_listeners(&a, &[], &node());
    let lb = service_listeners(&b, &[], &node());
    let desired = merge([&la, &lb]);
    assert_eq!(desired.listeners.len(), 3);
    assert_eq!(desired.conflicts.len(), 1);
    assert_eq!(desired.conflicts[0].kept.name, "a");
    assert_eq!(desired.conflicts[0].dropped.name, "b");
}

#[test]
fn affinity_timeout_default_and_explicit() {
    let slices: [EndpointSlice; 0] = [];
    let svc = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
    );
    let out = service_listeners(&svc, &slices, &node());
    assert_eq!(
        out.listeners[0].1.affinity,
        Some(Duration::from_secs(10_800))
    );
    let svc = service(
        "s",
        json!({"clusterIP": "127.96.0.3", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}, "ports": [{"port": 80}]}),
    );
    let out = service_listeners(&svc, &slices, &node());
    assert_eq!(out.listeners[0].1.affinity, Some(Duration::from_secs(60)));
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn round_robin_visits_every_backend_and_skips_excluded() {
    let backends = addrs(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
    let b = Balancer::new(backends.clone().into(), None);
    let now = Instant::now();
    let picks: Vec<_> = (0..6)
        .filter_map(|_| b.pick(ip("127.0.0.9"), now, &[]))
        .collect();
    assert_eq!(picks[..3], backends[..]);
    assert_eq!(picks[3..], backends[..]);
    let all_but_one = [backends[0], backends[1]];
    assert_eq!(
        b.pick(ip("127.0.0.9"), now, &all_but_one),
        Some(backends[2])
    );
    assert_eq!(b.pick(ip("127.0.0.9"), now, &backends), None);
    let empty = Balancer::new(Vec::new().into(), None);
    assert_eq!(empty.pick(ip("127.0.0.9"), now, &[]), None);
}

#[test]
fn client_ip_affinity_pins_until_timeout_or_backend_removal() {
    let backends = addrs(&["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
    let b = Balancer::new(backends.clone().into(), Some(Duration::from_secs(10)));
    let t0 = Instant::now();
    let first = b.pick(ip("127.0.0.9"), t0, &[]).expect("backend");
    for i in 1..5 {
        // Every use refreshes the entry, so 9 s gaps never expire it.
        let t = t0 + Duration::from_secs(9 * i);
        assert_eq!(b.pick(ip("127.0.0.9"), t, &[]), Some(first));
    }
    // A new endpoint that the hash prefers for this client: the pin holds while it is fresh, and
    // the client moves only once the entry has expired.
    let newcomer = (4..1000)
        .map(|port| SocketAddr::new(ip("127.0.0.1"), port))
        .find(|n| {
            let mut with = backends.clone();
            with.push(*n);
            rendezvous(ip("127.0.0.9"), &with, &[]) == Some(*n)
        })
        .expect("some port wins");
    let mut grown = backends.clone();
    grown.push(newcomer);
    b.set_backends(grown.into());
    let t = t0 + Duration::from_secs(40);
    assert_eq!(b.pick(ip("127.0.0.9"), t, &[]), Some(first));
    let late = t + Duration::from_secs(11);
    assert_eq!(b.pick(ip("127.0.0.9"), late, &[]), Some(newcomer));
    b.set_backends(backends.clone().into());
    // A removed backend releases its clients.
    let pinned = b.pick(ip("127.0.0.7"), late, &[]).expect("backend");
    let remaining: Vec<_> = backends.iter().copied().filter(|a| *a != pinned).collect();
    b.set_backends(remaining.clone().into());
    let moved = b.pick(ip("127.0.0.7"), late, &[]).expect("backend");
    assert!(remaining.contains(&moved));
    assert_eq!(b.pick(ip("127.0.0.7"), late, &[]), Some(moved));
    // Affinity off: plain round robin.
    b.set_affinity(None);
    let a1 = b.pick(ip("127.0.0.7"), late, &[]);
    let a2 = b.pick(ip("127.0.0.7"), late, &[]);
    assert_ne!(a1, a2);
}

#[test]
fn affinity_first_picks_agree_between_proxies_and_spread_evenly() {
    let backends = addrs(&["127.244.1.1:80", "127.244.1.2:80", "127.244.2.1:80"]);
    // Two proxies (say, two nodes' niwa-proxy sharing a ClusterIP) with different histories.
    let a = Balancer::new(backends.clone().into(), Some(Duration::from_secs(10)));
    let b = Balancer::new(backends.clone().into(), Some(Duration::from_secs(10)));
    let now = Instant::now();
    b.pick(ip("10.0.0.1"), now, &[]);
    let mut counts = [0usize; 3];
    for n in 0..600u32 {
        let client = IpAddr::from(std::net::Ipv4Addr::from(0x7f21_0000 + n));
        let pick = a.pick(client, now, &[]).expect("backend");
        assert_eq!(b.pick(client, now, &[]), Some(pick), "{client}");
        counts[backends.iter().position(|x| *x == pick).expect("known")] += 1;
    }
    assert!(counts.iter().all(|c| (140..=260).contains(c)), "{counts:?}");
    // Removing a backend moves only the clients it had; an excluded (refusing) one is skipped.
    let gone = backends[1];
    let rest = [backends[0], backends[2]];
    for n in 0..200u32 {
        let client = IpAddr::from(std::net::Ipv4Addr::from(0x7f22_0000 + n));
        let before = rendezvous(client, &backends, &[]).expect("backend");
        let after = rendezvous(client, &rest, &[]).expect("backend");
        assert!(
            before == gone || before == after,
            "{client} moved needlessly"
        );
        assert_eq!(rendezvous(client, &backends, &[gone]), Some(after));
    }
    assert_eq!(rendezvous(ip("127.0.0.9"), &backends, &backends), None);
}
