//! Pod records (`pods insecure|verified|disabled`) and their PTRs.

use super::*;

#[test]
fn pod_records_insecure_verified_disabled() {
    let mut insecure = zone();
    insecure.apply_pod(&pod("default", "p", "127.244.1.9", false));
    assert_eq!(
        ask(
            &insecure,
            "127-244-1-9.default.pod.cluster.local.",
            RecordType::A
        ),
        "No Error\nAN 127-244-1-9.default.pod.cluster.local. 5 IN A 127.244.1.9"
    );
    // Insecure: any well-formed name, in any namespace.
    assert_eq!(
        ask(
            &insecure,
            "127-1-2-3.other.pod.cluster.local.",
            RecordType::A
        ),
        "No Error\nAN 127-1-2-3.other.pod.cluster.local. 5 IN A 127.1.2.3"
    );
    assert!(
        ask(
            &insecure,
            "127-1-2-3.other.pod.cluster.local.",
            RecordType::AAAA
        )
        .starts_with("No Error\nNS")
    );
    assert!(
        ask(&insecure, "nope.other.pod.cluster.local.", RecordType::A).starts_with("Non-Existent")
    );
    assert_eq!(
        ask(&insecure, "9.1.244.127.in-addr.arpa.", RecordType::PTR),
        "No Error\nAN 9.1.244.127.in-addr.arpa. 5 IN PTR 127-244-1-9.default.pod.cluster.local."
    );

    let mut verified = zone_with(PodRecords::Verified);
    verified.apply_pod(&pod("default", "p", "127.244.1.9", false));
    assert!(
        ask(
            &verified,
            "127-244-1-9.default.pod.cluster.local.",
            RecordType::A
        )
        .contains("IN A 127.244.1.9")
    );
    assert!(
        ask(
            &verified,
            "127-244-1-9.other.pod.cluster.local.",
            RecordType::A
        )
        .starts_with("Non-Existent")
    );
    assert!(
        ask(&verified, "default.pod.cluster.local.", RecordType::A).starts_with("No Error\nNS")
    );
    verified.delete_pod(&ObjectKey::new("default", "p"));
    assert!(
        ask(
            &verified,
            "127-244-1-9.default.pod.cluster.local.",
            RecordType::A
        )
        .starts_with("Non-Existent")
    );
    assert_eq!(
        ask(&verified, "9.1.244.127.in-addr.arpa.", RecordType::PTR),
        "FORWARD"
    );

    let mut disabled = zone_with(PodRecords::Disabled);
    disabled.apply_pod(&pod("default", "p", "127.244.1.9", false));
    assert!(
        ask(
            &disabled,
            "127-244-1-9.default.pod.cluster.local.",
            RecordType::A
        )
        .starts_with("Non-Existent")
    );
    assert_eq!(
        ask(&disabled, "9.1.244.127.in-addr.arpa.", RecordType::PTR),
        "FORWARD"
    );
}

#[test]
fn pod_ptr_yields_to_endpoint_names_and_host_network_pods_have_none() {
    let mut z = headless_zone(false);
    z.apply_pod(&pod("db", "web-0", "127.244.1.5", false));
    assert_eq!(
        ask(&z, "5.1.244.127.in-addr.arpa.", RecordType::PTR),
        "No Error\nAN 5.1.244.127.in-addr.arpa. 5 IN PTR web-0.web.db.svc.cluster.local."
    );
    // Two host-network pods share their node's address: A records, no PTR.
    z.apply_pod(&pod("kube-system", "a", "127.1.0.1", true));
    z.apply_pod(&pod("kube-system", "b", "127.1.0.1", true));
    assert_eq!(
        ask(
            &z,
            "127-1-0-1.kube-system.pod.cluster.local.",
            RecordType::A
        ),
        "No Error\nAN 127-1-0-1.kube-system.pod.cluster.local. 5 IN A 127.1.0.1"
    );
    z.delete_pod(&ObjectKey::new("kube-system", "a"));
    assert!(
        ask(
            &z,
            "127-1-0-1.kube-system.pod.cluster.local.",
            RecordType::A
        )
        .contains("IN A")
    );
    assert_eq!(
        ask(&z, "1.0.1.127.in-addr.arpa.", RecordType::PTR),
        "FORWARD"
    );
}
