//! Forwarding to a local upstream (with caching and negative caching, UDP truncation and TCP),
//! malformed input, EDNS, health and metrics, and the kube-dns Service helper.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{BIG_RECORDS, Cluster, http_get, query, udp_exchange};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_non_cluster_names_with_caching() {
    let c = Cluster::start().await;

    let www = c.dig(&["www.example.test", "A"]);
    assert_eq!(www.status, "NOERROR");
    assert!(
        !www.has_flag("aa"),
        "forwarded answers are not authoritative"
    );
    assert!(www.has_flag("ra"));
    assert_eq!(www.answer_data(), vec!["127.0.0.7"]);
    let asked = c.upstream.questions();
    assert_eq!(asked, 1);

    // Cached: the upstream is not asked again, and the TTL counts down from 120.
    let again = c.dig(&["www.example.test", "A"]);
    assert_eq!(again.answer_data(), vec!["127.0.0.7"]);
    assert_eq!(c.upstream.questions(), asked);
    let ttl: u32 = again.answer[0]
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("ttl");
    assert!(ttl <= 120 && ttl > 100, "{ttl}");

    // Negative answers are cached too (RFC 2308), with the upstream's SOA.
    let nx = c.dig(&["missing.example.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN");
    assert!(
        nx.authority[0].contains("IN SOA ns.example.test."),
        "{}",
        nx.raw
    );
    let asked = c.upstream.questions();
    assert_eq!(c.dig(&["missing.example.test", "A"]).status, "NXDOMAIN");
    let nodata = c.dig(&["www.example.test", "AAAA"]);
    assert_eq!(nodata.status, "NOERROR");
    assert!(nodata.answer.is_empty());
    assert_eq!(c.dig(&["www.example.test", "AAAA"]).status, "NOERROR");
    assert_eq!(
        c.upstream.questions(),
        asked + 1,
        "only the first AAAA went upstream"
    );

    // Over TCP as well.
    let tcp = c.dig(&["+tcp", "www.example.test", "A"]);
    assert_eq!(tcp.answer_data(), vec!["127.0.0.7"]);

    let metrics = http_get(c.metrics, "/metrics").await.expect("metrics").1;
    assert!(
        metrics.contains("coredns_cache_hits_total{type=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coredns_cache_hits_total{type=\"denial\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("coredns_cache_misses_total"), "{metrics}");
    assert!(
        metrics.contains("coredns_forward_requests_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let c = Cluster::start().await;
    // Without EDNS the UDP limit is 512 bytes: TC is set, the answer is partial.
    let udp = c.dig(&["+noedns", "+ignore", "big.example.test", "A"]);
    assert!(udp.has_flag("tc"), "{}", udp.raw);
    assert!(udp.answer.len() < usize::from(BIG_RECORDS));
    // dig retries over TCP by itself when TC is set, and gets everything.
    let full = c.dig(&["+noedns", "big.example.test", "A"]);
    assert!(!full.has_flag("tc"));
    assert_eq!(full.answer.len(), usize::from(BIG_RECORDS), "{}", full.raw);
    // EDNS0 with a large buffer fits it in one UDP answer.
    let edns = c.dig(&["+bufsize=4096", "+ignore", "big.example.test", "A"]);
    assert!(!edns.has_flag("tc"), "{}", edns.raw);
    assert_eq!(edns.answer.len(), usize::from(BIG_RECORDS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_formerr_and_the_server_keeps_serving() {
    let c = Cluster::start().await;
    let wait = Duration::from_secs(2);

    // A header claiming one question, followed by garbage.
    let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0x3f, 0xff, 0xff, 0x01]);
    let reply = udp_exchange(c.dns, &garbage, wait)
        .await
        .expect("an answer");
    let reply = Message::from_vec(&reply).expect("a DNS message");
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // Two questions in one query: FORMERR (RFC 9619).
    let mut two = Message::from_vec(&query("a.example.test.", RecordType::A, 9)).expect("query");
    two.add_query(hickory_proto::op::Query::query(
        "b.example.test.".parse().expect("name"),
        RecordType::A,
    ));
    let reply = udp_exchange(c.dns, &two.to_vec().expect("encode"), wait)
        .await
        .expect("answer");
    assert_eq!(
        Message::from_vec(&reply)
            .expect("message")
            .metadata
            .response_code,
        ResponseCode::FormErr
    );

    // Shorter than a header: nothing to answer to, silently dropped.
    assert!(
        udp_exchange(c.dns, &[1, 2, 3], Duration::from_millis(300))
            .await
            .is_none()
    );

    // An EDNS version we do not speak: BADVERS.
    let badvers = c.dig(&["+edns=1", "+noednsnegotiation", "www.example.test", "A"]);
    assert_eq!(badvers.status, "BADVERS", "{}", badvers.raw);

    // Zone transfers are refused; other classes too.
    let axfr = c.dig(&["+tcp", "cluster.local", "AXFR"]);
    assert!(axfr.raw.contains("Transfer failed"), "{}", axfr.raw);
    assert_eq!(
        c.dig(&["-c", "CH", "version.bind", "TXT"]).status,
        "REFUSED"
    );

    // And it still answers.
    let www = c.dig(&["www.example.test", "A"]);
    assert_eq!(www.answer_data(), vec!["127.0.0.7"]);
    let metrics = http_get(c.metrics, "/metrics").await.expect("metrics").1;
    assert!(
        metrics.contains("coredns_dns_responses_total{rcode=\"FORMERR\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coredns_dns_requests_total{proto=\"udp\",family=\"1\",type=\"A\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coredns_dns_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints() {
    let c = Cluster::start().await;
    for path in ["/healthz", "/livez", "/readyz"] {
        let (status, body) = http_get(c.metrics, path).await.expect(path);
        assert_eq!((status, body.trim()), (200, "ok"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_dns_service_helper_is_idempotent() {
    let c = Cluster::start().await;
    let ip: IpAddr = niwa_dns::kube_dns::DEFAULT_CLUSTER_IP.parse().expect("ip");
    let endpoint = "127.0.0.53:5353".parse().expect("addr");
    let svc = niwa_dns::ensure_kube_dns_service(&c.cp.client(), ip, Some(endpoint))
        .await
        .expect("ensure");
    assert_eq!(
        svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        Some("127.96.0.10")
    );
    // Twice is fine.
    niwa_dns::ensure_kube_dns_service(&c.cp.client(), ip, Some(endpoint))
        .await
        .expect("ensure again");

    // The zone's name server is the kube-dns Service.
    let ns = c
        .dig_until(&["ns.dns.cluster.local", "A"], |d| !d.answer.is_empty())
        .await;
    assert_eq!(ns.answer_data(), vec!["127.96.0.10"]);
    let svc = c.dig(&["kube-dns.kube-system.svc.cluster.local", "A"]);
    assert_eq!(svc.answer_data(), vec!["127.96.0.10"]);
    let srv = c.dig(&["_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV"]);
    assert_eq!(
        srv.answer_data(),
        vec!["0 100 53 kube-dns.kube-system.svc.cluster.local."]
    );
    let slices = c.cp.client().dynamic(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        Some("kube-system"),
    );
    let slice = slices
        .get(niwa_dns::kube_dns::SLICE_NAME)
        .await
        .expect("slice");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "127.0.0.53");
    assert_eq!(slice["ports"][0]["port"], 5353);
}
