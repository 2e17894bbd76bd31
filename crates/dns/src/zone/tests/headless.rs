//! Headless Services: A/SRV records per ready endpoint, readiness and publishNotReadyAddresses,
//! endpoints merged across slices.

use super::*;

#[test]
fn headless_service_answers_ready_endpoints() {
    let z = headless_zone(false);
    assert_eq!(
        ask(&z, "web.db.svc.cluster.local.", RecordType::A),
        "No Error\n\
         AN web.db.svc.cluster.local. 5 IN A 127.244.1.5\n\
         AN web.db.svc.cluster.local. 5 IN A 127.244.1.6\n\
         AN web.db.svc.cluster.local. 5 IN A 127.244.2.7"
    );
    assert_eq!(
        ask(&z, "web-0.web.db.svc.cluster.local.", RecordType::A),
        "No Error\nAN web-0.web.db.svc.cluster.local. 5 IN A 127.244.1.5"
    );
    // Endpoints without a hostname are named by their dashed address.
    assert_eq!(
        ask(&z, "127-244-2-7.web.db.svc.cluster.local.", RecordType::A),
        "No Error\nAN 127-244-2-7.web.db.svc.cluster.local. 5 IN A 127.244.2.7"
    );
    // A not-ready endpoint has no name.
    assert!(
        ask(&z, "web-3.web.db.svc.cluster.local.", RecordType::A)
            .starts_with("Non-Existent Domain")
    );
    assert_eq!(
        ask(&z, "_http._tcp.web.db.svc.cluster.local.", RecordType::SRV),
        "No Error\n\
         AN _http._tcp.web.db.svc.cluster.local. 5 IN SRV 0 33 8080 127-244-2-7.web.db.svc.cluster.local.\n\
         AN _http._tcp.web.db.svc.cluster.local. 5 IN SRV 0 33 8080 web-0.web.db.svc.cluster.local.\n\
         AN _http._tcp.web.db.svc.cluster.local. 5 IN SRV 0 33 8080 web-1.web.db.svc.cluster.local.\n\
         AD 127-244-2-7.web.db.svc.cluster.local. 5 IN A 127.244.2.7\n\
         AD web-0.web.db.svc.cluster.local. 5 IN A 127.244.1.5\n\
         AD web-1.web.db.svc.cluster.local. 5 IN A 127.244.1.6"
    );
    assert_eq!(
        ask(&z, "5.1.244.127.in-addr.arpa.", RecordType::PTR),
        "No Error\nAN 5.1.244.127.in-addr.arpa. 5 IN PTR web-0.web.db.svc.cluster.local."
    );
}

#[test]
fn headless_follows_readiness_and_publish_not_ready() {
    let mut z = headless_zone(true);
    assert!(ask(&z, "web-3.web.db.svc.cluster.local.", RecordType::A).contains("127.244.2.8"));
    assert_eq!(
        ask(&z, "web.db.svc.cluster.local.", RecordType::A)
            .lines()
            .count(),
        5
    );

    // Readiness flips: the answer follows, and without ready endpoints the name is gone (spec 2.4.1).
    z = headless_zone(false);
    z.apply_endpoint_slice(&slice(
        "db",
        "web-abc",
        "web",
        json!({"ports": [{"name": "http", "port": 8080}],
               "endpoints": [{"addresses": ["127.244.1.5"], "hostname": "web-0", "conditions": {"ready": false}}]}),
    ));
    assert!(ask(&z, "web.db.svc.cluster.local.", RecordType::A).starts_with("Non-Existent Domain"));
    assert!(
        ask(&z, "web-0.web.db.svc.cluster.local.", RecordType::A)
            .starts_with("Non-Existent Domain")
    );
    assert_eq!(
        ask(&z, "5.1.244.127.in-addr.arpa.", RecordType::PTR),
        "FORWARD"
    );
    z.apply_endpoint_slice(&slice(
        "db",
        "web-abc",
        "web",
        json!({"endpoints": [{"addresses": ["127.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}}]}),
    ));
    assert_eq!(
        ask(&z, "web.db.svc.cluster.local.", RecordType::A),
        "No Error\nAN web.db.svc.cluster.local. 5 IN A 127.244.1.5"
    );
}

#[test]
fn endpoints_merge_across_slices_and_survive_slice_deletion() {
    let mut z = headless_zone(false);
    z.apply_endpoint_slice(&slice(
        "db",
        "web-def",
        "web",
        json!({"endpoints": [
            {"addresses": ["127.244.1.5"], "hostname": "web-0"},
            {"addresses": ["127.244.3.9"], "hostname": "web-9"},
        ]}),
    ));
    let a = ask(&z, "web.db.svc.cluster.local.", RecordType::A);
    assert_eq!(a.lines().count(), 5, "{a}");
    assert_eq!(a.matches("127.244.1.5").count(), 1, "deduplicated: {a}");
    z.delete_endpoint_slice(&ObjectKey::new("db", "web-abc"));
    assert_eq!(
        ask(&z, "web.db.svc.cluster.local.", RecordType::A),
        "No Error\n\
         AN web.db.svc.cluster.local. 5 IN A 127.244.1.5\n\
         AN web.db.svc.cluster.local. 5 IN A 127.244.3.9"
    );
    z.delete_endpoint_slice(&ObjectKey::new("db", "web-def"));
    assert!(ask(&z, "web.db.svc.cluster.local.", RecordType::A).starts_with("Non-Existent Domain"));
}

#[test]
fn slices_arriving_before_their_service_count_once_it_arrives() {
    let mut z = zone();
    z.apply_endpoint_slice(&slice(
        "db",
        "web-abc",
        "web",
        json!({"endpoints": [{"addresses": ["127.244.1.5"], "hostname": "web-0"}]}),
    ));
    assert!(ask(&z, "web.db.svc.cluster.local.", RecordType::A).starts_with("Non-Existent Domain"));
    z.apply_service(&service("db", "web", json!({"clusterIP": "None"})));
    assert_eq!(
        ask(&z, "web-0.web.db.svc.cluster.local.", RecordType::A),
        "No Error\nAN web-0.web.db.svc.cluster.local. 5 IN A 127.244.1.5"
    );
    // Turning it into a ClusterIP Service drops the endpoint names.
    z.apply_service(&service("db", "web", json!({"clusterIP": "127.96.0.30"})));
    assert!(
        ask(&z, "web-0.web.db.svc.cluster.local.", RecordType::A)
            .starts_with("Non-Existent Domain")
    );
    assert_eq!(
        ask(&z, "web.db.svc.cluster.local.", RecordType::A),
        "No Error\nAN web.db.svc.cluster.local. 5 IN A 127.96.0.30"
    );
}
