//! Golden cases for the nft rendering: the exact text of each transaction.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Balance, Programmed, render_base, render_sync, table_name, table_pid};
use crate::model::{ListenerKey, ListenerKind, ListenerSpec, Protocol, ServicePortName};

const T: &str = "niwa-proxy-n1-42-0";

fn key(ip: &str, port: u16, protocol: Protocol) -> ListenerKey {
    ListenerKey {
        ip: ip.parse().expect("ip"),
        port,
        protocol,
    }
}

fn spec(backends: &[&str], affinity: Option<u64>) -> ListenerSpec {
    let backends: Vec<SocketAddr> = backends.iter().map(|b| b.parse().expect("addr")).collect();
    ListenerSpec {
        service: ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: "http".into(),
        },
        kind: ListenerKind::ClusterIp,
        backends: Arc::from(backends),
        affinity: affinity.map(Duration::from_secs),
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn table_names_carry_node_and_pid() {
    let name = table_name("Node_1.example", 4242, 3);
    assert_eq!(name, "niwa-proxy-node-1-example-4242-3");
    assert_eq!(table_pid(&name), Some(4242));
    assert_eq!(table_pid("niwa-proxy-node-1-12-0"), Some(12));
    assert_eq!(table_pid("nat"), None);
    assert_eq!(table_pid("niwa-proxy-12-0"), None, "no node part");
    assert_eq!(table_pid("niwa-proxy-node-x-0"), None);
}

#[test]
fn base_table_hooks_nat_before_the_reject_filter() {
    let base = render_base(T, false, Balance::RoundRobin);
    assert!(
        base.starts_with("table ip niwa-proxy-n1-42-0 {\n"),
        "{base}"
    );
    assert!(base.contains("chain nat-output { type nat hook output priority -100; policy accept; ip daddr . meta l4proto . th dport vmap @services; }"), "{base}");
    assert!(base.contains("chain filter-output { type filter hook output priority -90; policy accept; ip daddr . meta l4proto . th dport @no-endpoints goto reject-chain; }"), "{base}");
    assert!(base.contains("meta l4proto tcp reject with tcp reset; reject;"));
    // Group chains are made with the maps (see BASE_GROUPS for why).
    assert!(base.contains("\tchain rr-64 { dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen inc mod 64 map @backends; }"), "{base}");
    assert!(base.contains("\tchain pick-rr-1 { ip daddr . meta l4proto . th dport . numgen inc mod 1 vmap @endpoint-chains; }"), "{base}");
    assert!(base.ends_with("}\n"));
    assert_eq!(super::base_groups(Balance::RoundRobin).len(), 128);
    let rebuild = render_base(T, true, Balance::RoundRobin);
    assert_eq!(
        lines(&rebuild)[..2],
        [
            "add table ip niwa-proxy-n1-42-0",
            "delete table ip niwa-proxy-n1-42-0"
        ]
    );
}

#[test]
fn first_sync_programs_round_robin_groups_and_rejects() {
    let mut desired = BTreeMap::new();
    desired.insert(
        key("127.96.0.20", 80, Protocol::Tcp),
        spec(&["127.244.1.5:8080", "127.244.1.6:8080"], None),
    );
    desired.insert(
        key("127.1.0.1", 30080, Protocol::Tcp),
        spec(&["127.244.1.5:8080"], None),
    );
    desired.insert(key("127.96.0.10", 53, Protocol::Udp), spec(&[], None));
    desired.insert(key("::1", 80, Protocol::Tcp), spec(&["[::1]:8080"], None));
    let tx = render_sync(T, &Programmed::default(), &desired, Balance::RoundRobin);
    assert_eq!(
        lines(&tx.text),
        [
            "add chain ip niwa-proxy-n1-42-0 rr-1",
            "add rule ip niwa-proxy-n1-42-0 rr-1 dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen inc mod 1 map @backends",
            "add chain ip niwa-proxy-n1-42-0 rr-2",
            "add rule ip niwa-proxy-n1-42-0 rr-2 dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen inc mod 2 map @backends",
            "add element ip niwa-proxy-n1-42-0 backends { 127.1.0.1 . tcp . 30080 . 0 : 127.244.1.5 . 8080, 127.96.0.20 . tcp . 80 . 0 : 127.244.1.5 . 8080, 127.96.0.20 . tcp . 80 . 1 : 127.244.1.6 . 8080 }",
            "add element ip niwa-proxy-n1-42-0 no-endpoints { 127.96.0.10 . udp . 53 }",
            "add element ip niwa-proxy-n1-42-0 services { 127.1.0.1 . tcp . 30080 : goto rr-1, 127.96.0.20 . tcp . 80 : goto rr-2 }",
        ]
    );
    assert_eq!(tx.skipped_v6, 1);
    assert_eq!(tx.changed, 3);
    assert_eq!(tx.next.groups.len(), 2);
    assert_eq!(tx.next.rules(), 8);
    assert_eq!(tx.next.elements(), 6);

    // Nothing changed: an empty transaction.
    let again = render_sync(T, &tx.next, &desired, Balance::RoundRobin);
    assert_eq!(again.text, "");
    assert_eq!(again.changed, 0);

    // One endpoint more for the ClusterIP, the UDP Service gets one, the NodePort goes away:
    // only those elements move; rr-1 and rr-2 stay, rr-3 is added.
    desired.insert(
        key("127.96.0.20", 80, Protocol::Tcp),
        spec(
            &["127.244.1.5:8080", "127.244.1.6:8080", "127.244.1.7:8080"],
            None,
        ),
    );
    desired.insert(
        key("127.96.0.10", 53, Protocol::Udp),
        spec(&["127.244.1.9:5353"], None),
    );
    desired.remove(&key("127.1.0.1", 30080, Protocol::Tcp));
    let next = render_sync(T, &tx.next, &desired, Balance::Random);
    assert_eq!(
        lines(&next.text),
        [
            "delete element ip niwa-proxy-n1-42-0 backends { 127.1.0.1 . tcp . 30080 . 0, 127.96.0.20 . tcp . 80 . 0, 127.96.0.20 . tcp . 80 . 1 }",
            "delete element ip niwa-proxy-n1-42-0 no-endpoints { 127.96.0.10 . udp . 53 }",
            "delete element ip niwa-proxy-n1-42-0 services { 127.1.0.1 . tcp . 30080, 127.96.0.20 . tcp . 80 }",
            "add chain ip niwa-proxy-n1-42-0 rand-1",
            "add rule ip niwa-proxy-n1-42-0 rand-1 dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen random mod 1 map @backends",
            "add chain ip niwa-proxy-n1-42-0 rand-3",
            "add rule ip niwa-proxy-n1-42-0 rand-3 dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen random mod 3 map @backends",
            "add element ip niwa-proxy-n1-42-0 backends { 127.96.0.10 . udp . 53 . 0 : 127.244.1.9 . 5353, 127.96.0.20 . tcp . 80 . 0 : 127.244.1.5 . 8080, 127.96.0.20 . tcp . 80 . 1 : 127.244.1.6 . 8080, 127.96.0.20 . tcp . 80 . 2 : 127.244.1.7 . 8080 }",
            "add element ip niwa-proxy-n1-42-0 services { 127.96.0.10 . udp . 53 : goto rand-1, 127.96.0.20 . tcp . 80 : goto rand-3 }",
        ]
    );
    assert_eq!(next.changed, 3);
    assert!(
        next.stale_udp.is_empty(),
        "the UDP Service only gained an endpoint"
    );

    // The UDP endpoint goes: its conntrack entries are to be cleared.
    desired.insert(key("127.96.0.10", 53, Protocol::Udp), spec(&[], None));
    let gone = render_sync(T, &next.next, &desired, Balance::Random);
    assert_eq!(
        gone.stale_udp,
        [(
            key("127.96.0.10", 53, Protocol::Udp),
            "127.244.1.9:5353".parse().expect("addr")
        )]
    );
}

#[test]
fn affinity_keeps_the_client_sets_of_endpoints_that_stay() {
    let k = key("127.96.0.30", 80, Protocol::Tcp);
    let mut desired = BTreeMap::new();
    desired.insert(
        k,
        spec(&["127.244.1.5:8080", "127.244.1.6:8080"], Some(600)),
    );
    let first = render_sync(T, &Programmed::default(), &desired, Balance::RoundRobin);
    let t = "niwa-proxy-n1-42-0";
    let s = "127.96.0.30-80-tcp";
    assert_eq!(
        lines(&first.text),
        [
            format!("add chain ip {t} pick-rr-2"),
            format!(
                "add rule ip {t} pick-rr-2 ip daddr . meta l4proto . th dport . numgen inc mod 2 vmap @endpoint-chains"
            ),
            format!("add chain ip {t} svc-{s}"),
            format!(
                "add set ip {t} aff-{s}-127.244.1.5-8080 {{ type ipv4_addr; flags dynamic,timeout; size 65536; }}"
            ),
            format!("add chain ip {t} ep-{s}-127.244.1.5-8080"),
            format!(
                "add rule ip {t} ep-{s}-127.244.1.5-8080 update @aff-{s}-127.244.1.5-8080 {{ ip saddr timeout 600s }} meta l4proto tcp dnat ip to 127.244.1.5:8080"
            ),
            format!(
                "add rule ip {t} svc-{s} ip saddr @aff-{s}-127.244.1.5-8080 goto ep-{s}-127.244.1.5-8080"
            ),
            format!(
                "add set ip {t} aff-{s}-127.244.1.6-8080 {{ type ipv4_addr; flags dynamic,timeout; size 65536; }}"
            ),
            format!("add chain ip {t} ep-{s}-127.244.1.6-8080"),
            format!(
                "add rule ip {t} ep-{s}-127.244.1.6-8080 update @aff-{s}-127.244.1.6-8080 {{ ip saddr timeout 600s }} meta l4proto tcp dnat ip to 127.244.1.6:8080"
            ),
            format!(
                "add rule ip {t} svc-{s} ip saddr @aff-{s}-127.244.1.6-8080 goto ep-{s}-127.244.1.6-8080"
            ),
            format!("add rule ip {t} svc-{s} goto pick-rr-2"),
            format!(
                "add element ip {t} endpoint-chains {{ 127.96.0.30 . tcp . 80 . 0 : goto ep-{s}-127.244.1.5-8080, 127.96.0.30 . tcp . 80 . 1 : goto ep-{s}-127.244.1.6-8080 }}"
            ),
            format!("add element ip {t} services {{ 127.96.0.30 . tcp . 80 : goto svc-{s} }}"),
        ]
    );
    assert_eq!(first.next.rules(), 6 + 1 + 5);

    // .5 leaves, .7 arrives: .6's set (its pinned clients) stays, .5's chain and set go after
    // every rule naming them was flushed.
    desired.insert(
        k,
        spec(&["127.244.1.6:8080", "127.244.1.7:8080"], Some(600)),
    );
    let next = render_sync(T, &first.next, &desired, Balance::RoundRobin);
    let text = lines(&next.text);
    let at = |needle: &str| {
        text.iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("missing {needle:?} in {text:#?}"))
    };
    let flush_svc = at(&format!("flush chain ip {t} svc-{s}"));
    let delete_chain = at(&format!("delete chain ip {t} ep-{s}-127.244.1.5-8080"));
    let delete_set = at(&format!("delete set ip {t} aff-{s}-127.244.1.5-8080"));
    let delete_elements = at(&format!(
        "delete element ip {t} endpoint-chains {{ 127.96.0.30 . tcp . 80 . 0, 127.96.0.30 . tcp . 80 . 1 }}"
    ));
    assert!(delete_elements < flush_svc && flush_svc < delete_chain && delete_chain < delete_set);
    at(&format!("flush chain ip {t} ep-{s}-127.244.1.6-8080"));
    at(&format!(
        "add set ip {t} aff-{s}-127.244.1.7-8080 {{ type ipv4_addr; flags dynamic,timeout; size 65536; }}"
    ));
    assert!(
        !next
            .text
            .contains(&format!("add set ip {t} aff-{s}-127.244.1.6-8080")),
        "the kept endpoint's set is not recreated:\n{}",
        next.text
    );
    assert!(
        !next
            .text
            .contains(&format!("delete set ip {t} aff-{s}-127.244.1.6-8080"))
    );
    assert!(
        !next.text.contains("pick-rr-2 ip daddr"),
        "pick-rr-2 exists already"
    );

    // Affinity off: every affinity object goes.
    desired.insert(k, spec(&["127.244.1.6:8080"], None));
    let off = render_sync(T, &next.next, &desired, Balance::RoundRobin);
    for gone in [
        format!("delete chain ip {t} svc-{s}"),
        format!("delete chain ip {t} ep-{s}-127.244.1.6-8080"),
        format!("delete set ip {t} aff-{s}-127.244.1.7-8080"),
    ] {
        assert!(off.text.lines().any(|l| l == gone), "{gone}\n{}", off.text);
    }
    assert!(off.text.contains("127.96.0.30 . tcp . 80 : goto rr-1"));
}
