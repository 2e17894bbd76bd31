//! Golden tests of the zone: objects in, dig-like answers out.
//!
//! The shared fixtures and the ClusterIP, ExternalName and lifecycle cases are here; headless
//! Services and their endpoints are in `headless`, pod records in `pods`.

mod headless;
mod pods;

use hickory_proto::rr::{LowerName, Name, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;

fn zone_with(mode: PodRecords) -> Zone {
    let mut config = ZoneConfig::new("cluster.local").expect("domain");
    config.pod_records = mode;
    config.initial_serial = 100;
    Zone::new(config)
}

fn zone() -> Zone {
    zone_with(PodRecords::Insecure)
}

fn service(ns: &str, name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .expect("service")
}

fn slice(ns: &str, name: &str, svc: &str, body: serde_json::Value) -> EndpointSlice {
    let mut value = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
    });
    if let (Some(v), Some(b)) = (value.as_object_mut(), body.as_object()) {
        v.extend(b.clone());
    }
    serde_json::from_value(value).expect("endpointslice")
}

fn pod(ns: &str, name: &str, ip: &str, host_network: bool) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"containers": [{"name": "c", "image": "i"}], "hostNetwork": host_network},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .expect("pod")
}

/// The answer as text: rcode line, then `;` section markers like dig's.
fn ask(zone: &Zone, name: &str, qtype: RecordType) -> String {
    let qname = LowerName::new(&Name::from_ascii(name).expect("qname"));
    match zone.answer(&qname, qtype) {
        Outcome::Forward => "FORWARD".to_string(),
        Outcome::Refused => "REFUSED".to_string(),
        Outcome::Answer(a) => {
            let mut out = format!("{}", a.rcode);
            let mut section = |title: &str, records: &[hickory_proto::rr::Record]| {
                let mut lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
                lines.sort();
                for line in lines {
                    out.push_str(&format!("\n{title} {line}"));
                }
            };
            section("AN", &a.answers);
            section("NS", &a.authorities);
            section("AD", &a.additionals);
            if let Some(chase) = a.chase {
                out.push_str(&format!("\nCHASE {chase}"));
            }
            out
        }
    }
}

const SOA_LINE: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.";

fn cluster_ip_zone() -> Zone {
    let mut z = zone();
    z.apply_service(&service(
        "default",
        "nginx",
        json!({"clusterIP": "127.96.0.20", "clusterIPs": ["127.96.0.20"], "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"port": 8080},
        ]}),
    ));
    z
}

/// A headless Service `db/web` with endpoints (shared with the pod-record tests).
fn headless_zone(publish_not_ready: bool) -> Zone {
    let mut z = zone_with(PodRecords::Verified);
    z.apply_service(&service(
        "db",
        "web",
        json!({"clusterIP": "None", "publishNotReadyAddresses": publish_not_ready,
               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
    ));
    z.apply_endpoint_slice(&slice(
        "db",
        "web-abc",
        "web",
        json!({
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["127.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
                {"addresses": ["127.244.1.6"], "hostname": "web-1"},
                {"addresses": ["127.244.2.7"], "conditions": {"ready": true}},
                {"addresses": ["127.244.2.8"], "hostname": "web-3", "conditions": {"ready": false}},
            ],
        }),
    ));
    z
}

#[test]
fn cluster_ip_service_a_record() {
    let z = cluster_ip_zone();
    assert_eq!(
        ask(&z, "nginx.default.svc.cluster.local.", RecordType::A),
        "No Error\nAN nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"
    );
    // Case-insensitive, as the specification requires (the question section keeps the
    // client's spelling; owner names are the zone's).
    assert_eq!(
        ask(&z, "NGINX.Default.SVC.cluster.LOCAL.", RecordType::A),
        "No Error\nAN nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"
    );
}

#[test]
fn nodata_versus_nxdomain() {
    let z = cluster_ip_zone();
    // The name exists without AAAA: NODATA (NOERROR, no answer, SOA for negative caching).
    let nodata = ask(&z, "nginx.default.svc.cluster.local.", RecordType::AAAA);
    assert!(
        nodata.starts_with(&format!("No Error\nNS {SOA_LINE} 101 7200 1800 86400 5")),
        "{nodata}"
    );
    assert_eq!(nodata.lines().count(), 2);
    // Empty non-terminals exist.
    for name in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "pod.cluster.local.",
    ] {
        assert!(
            ask(&z, name, RecordType::A).starts_with("No Error\nNS "),
            "{name}"
        );
    }
    // Unknown names do not.
    for name in [
        "other.default.svc.cluster.local.",
        "nginx.other.svc.cluster.local.",
        "kube-system.svc.cluster.local.",
        "x.nginx.default.svc.cluster.local.",
        "foo.cluster.local.",
    ] {
        assert!(
            ask(&z, name, RecordType::A).starts_with("Non-Existent Domain\nNS "),
            "{name}"
        );
    }
}

#[test]
fn srv_for_named_ports_only() {
    let z = cluster_ip_zone();
    assert_eq!(
        ask(
            &z,
            "_http._tcp.nginx.default.svc.cluster.local.",
            RecordType::SRV
        ),
        "No Error\n\
         AN _http._tcp.nginx.default.svc.cluster.local. 5 IN SRV 0 100 80 nginx.default.svc.cluster.local.\n\
         AD nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"
    );
    assert_eq!(
        ask(
            &z,
            "_dns._udp.nginx.default.svc.cluster.local.",
            RecordType::SRV
        ),
        "No Error\n\
         AN _dns._udp.nginx.default.svc.cluster.local. 5 IN SRV 0 100 53 nginx.default.svc.cluster.local.\n\
         AD nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"
    );
    // Wrong protocol: no such name.
    assert!(
        ask(
            &z,
            "_http._udp.nginx.default.svc.cluster.local.",
            RecordType::SRV
        )
        .starts_with("Non-Existent Domain")
    );
    // `_tcp.<svc>` is an empty non-terminal.
    assert!(
        ask(&z, "_tcp.nginx.default.svc.cluster.local.", RecordType::SRV)
            .starts_with("No Error\nNS")
    );
}

#[test]
fn ptr_for_cluster_ip_and_forward_for_unknown_addresses() {
    let z = cluster_ip_zone();
    assert_eq!(
        ask(&z, "20.0.96.127.in-addr.arpa.", RecordType::PTR),
        "No Error\nAN 20.0.96.127.in-addr.arpa. 5 IN PTR nginx.default.svc.cluster.local."
    );
    assert_eq!(
        ask(&z, "21.0.96.127.in-addr.arpa.", RecordType::PTR),
        "FORWARD"
    );
    assert_eq!(
        ask(&z, "0.96.127.in-addr.arpa.", RecordType::PTR),
        "FORWARD"
    );
    let nodata = ask(&z, "20.0.96.127.in-addr.arpa.", RecordType::A);
    assert!(
        nodata.starts_with("No Error\nNS in-addr.arpa. 5 IN SOA"),
        "{nodata}"
    );
}

#[test]
fn non_cluster_names_are_forwarded_and_wildcards_refused() {
    let z = cluster_ip_zone();
    assert_eq!(ask(&z, "example.com.", RecordType::A), "FORWARD");
    assert_eq!(ask(&z, "local.", RecordType::SOA), "FORWARD");
    assert_eq!(
        ask(&z, "*.default.svc.cluster.local.", RecordType::A),
        "REFUSED"
    );
    assert_eq!(
        ask(&z, "nginx.*.svc.cluster.local.", RecordType::A),
        "REFUSED"
    );
}

#[test]
fn apex_soa_ns_and_schema_version() {
    let mut z = cluster_ip_zone();
    z.apply_service(&service(
        "kube-system",
        "kube-dns",
        json!({"clusterIP": "127.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    ));
    assert_eq!(
        ask(&z, "cluster.local.", RecordType::SOA),
        format!("No Error\nAN {SOA_LINE} 102 7200 1800 86400 5")
    );
    assert_eq!(
        ask(&z, "cluster.local.", RecordType::NS),
        "No Error\nAN cluster.local. 5 IN NS ns.dns.cluster.local.\nAD ns.dns.cluster.local. 5 IN A 127.96.0.10"
    );
    assert_eq!(
        ask(&z, "ns.dns.cluster.local.", RecordType::A),
        "No Error\nAN ns.dns.cluster.local. 5 IN A 127.96.0.10"
    );
    assert_eq!(
        ask(&z, "dns-version.cluster.local.", RecordType::TXT),
        "No Error\nAN dns-version.cluster.local. 5 IN TXT 1.1.0"
    );
    assert!(
        ask(&z, "cluster.local.", RecordType::A)
            .starts_with("No Error\nNS cluster.local. 5 IN SOA")
    );
}

#[test]
fn external_name_is_a_cname() {
    let mut z = cluster_ip_zone();
    z.apply_service(&service(
        "default",
        "search",
        json!({"type": "ExternalName", "externalName": "www.example.test"}),
    ));
    assert_eq!(
        ask(&z, "search.default.svc.cluster.local.", RecordType::A),
        "No Error\nAN search.default.svc.cluster.local. 5 IN CNAME www.example.test.\nCHASE www.example.test."
    );
    assert_eq!(
        ask(&z, "search.default.svc.cluster.local.", RecordType::CNAME),
        "No Error\nAN search.default.svc.cluster.local. 5 IN CNAME www.example.test."
    );
    // An ExternalName pointing into the cluster is followed in the zone.
    z.apply_service(&service(
        "default",
        "alias",
        json!({"type": "ExternalName", "externalName": "nginx.default.svc.cluster.local."}),
    ));
    assert_eq!(
        ask(&z, "alias.default.svc.cluster.local.", RecordType::A),
        "No Error\n\
         AN alias.default.svc.cluster.local. 5 IN CNAME nginx.default.svc.cluster.local.\n\
         AN nginx.default.svc.cluster.local. 5 IN A 127.96.0.20"
    );
    // A loop ends in SERVFAIL rather than forever.
    z.apply_service(&service(
        "default",
        "loop",
        json!({"type": "ExternalName", "externalName": "loop.default.svc.cluster.local"}),
    ));
    assert!(
        ask(&z, "loop.default.svc.cluster.local.", RecordType::A).starts_with("Server Failure")
    );
}

#[test]
fn dual_stack_and_any() {
    let mut z = zone();
    z.apply_service(&service(
        "default",
        "ds",
        json!({"clusterIP": "127.96.0.40", "clusterIPs": ["127.96.0.40", "fd00:96::40"]}),
    ));
    assert_eq!(
        ask(&z, "ds.default.svc.cluster.local.", RecordType::AAAA),
        "No Error\nAN ds.default.svc.cluster.local. 5 IN AAAA fd00:96::40"
    );
    assert_eq!(
        ask(&z, "ds.default.svc.cluster.local.", RecordType::ANY)
            .lines()
            .count(),
        3
    );
    let ptr6 = ask(
        &z,
        "0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa.",
        RecordType::PTR,
    );
    assert!(
        ptr6.ends_with("IN PTR ds.default.svc.cluster.local."),
        "{ptr6}"
    );
}

#[test]
fn deletes_and_relists_remove_everything_and_bump_the_serial() {
    let mut z = cluster_ip_zone();
    let baseline = z.record_count();
    let serial = z.serial();
    z.apply_service(&service(
        "default",
        "extra",
        json!({"clusterIP": "127.96.0.50"}),
    ));
    assert!(z.serial() > serial);
    // Re-applying the same object is not a change.
    let serial = z.serial();
    z.apply_service(&service(
        "default",
        "extra",
        json!({"clusterIP": "127.96.0.50"}),
    ));
    assert_eq!(z.serial(), serial);

    // A re-list without `extra` deletes it.
    let nginx = service(
        "default",
        "nginx",
        json!({"clusterIP": "127.96.0.20", "clusterIPs": ["127.96.0.20"], "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"port": 8080},
        ]}),
    );
    z.apply_service(&nginx);
    z.retain_services(&[ObjectKey::new("default", "nginx")].into_iter().collect());
    assert_eq!(z.record_count(), baseline);
    assert!(ask(&z, "extra.default.svc.cluster.local.", RecordType::A).starts_with("Non-Existent"));
    z.delete_service(&ObjectKey::new("default", "nginx"));
    assert_eq!(z.record_count(), 1, "only dns-version remains");
    assert!(ask(&z, "default.svc.cluster.local.", RecordType::A).starts_with("Non-Existent"));
}

#[test]
fn invalid_domain_is_a_clear_error() {
    let err = ZoneConfig::new(".").expect_err("root");
    assert!(err.to_string().contains("root"), "{err}");
    let err = ZoneConfig::new("a..b").expect_err("empty label");
    assert!(err.to_string().contains("a..b"), "{err}");
    assert_eq!(
        ZoneConfig::new("Cluster.Local.")
            .expect("domain")
            .domain
            .to_string(),
        "cluster.local."
    );
}
