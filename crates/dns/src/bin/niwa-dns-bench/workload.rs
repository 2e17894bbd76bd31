//! The data set: N Services created through the apiserver, the dnsperf query file, and the
//! equivalent static zone files for the reference server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::Client;

pub const NAMESPACE: &str = "bench";
pub const DOMAIN: &str = "cluster.local";
pub const TTL: u32 = 5;
/// Creates in flight while loading Services.
const CREATE_CONCURRENCY: usize = 64;

/// A created Service: its index and allocated cluster IP.
pub struct BenchService {
    pub index: usize,
    pub ip: Ipv4Addr,
}

pub fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

pub fn service_fqdn(i: usize) -> String {
    format!("{}.{NAMESPACE}.svc.{DOMAIN}", service_name(i))
}

/// Creates `n` ClusterIP Services (named port `http`), letting the apiserver allocate their IPs.
pub async fn create_services(client: &Client, n: usize) -> Result<Vec<BenchService>> {
    let namespaces = client.cluster::<Namespace>();
    if namespaces.get_opt(NAMESPACE).await?.is_none() {
        namespaces
            .create(&Namespace {
                metadata: ObjectMeta {
                    name: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .await
            .context("creating the bench namespace")?;
    }
    let services = client.namespaced::<Service>(NAMESPACE);
    let results: Vec<Result<BenchService>> = futures::stream::iter(0..n)
        .map(|index| {
            let services = services.clone();
            async move {
                let svc = Service {
                    metadata: ObjectMeta {
                        name: Some(service_name(index)),
                        namespace: Some(NAMESPACE.into()),
                        ..Default::default()
                    },
                    spec: Some(ServiceSpec {
                        ports: Some(vec![ServicePort {
                            name: Some("http".into()),
                            port: 80,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let created = services
                    .create(&svc)
                    .await
                    .with_context(|| format!("creating {}", service_name(index)))?;
                let ip = created
                    .spec
                    .and_then(|s| s.cluster_ip)
                    .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                    .with_context(|| format!("{} got no IPv4 cluster IP", service_name(index)))?;
                Ok(BenchService { index, ip })
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect()
        .await;
    let mut created = results.into_iter().collect::<Result<Vec<_>>>()?;
    created.sort_by_key(|s| s.index);
    Ok(created)
}

fn reverse_v4(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

/// The dnsperf input: for every Service an A query; for some also SRV, AAAA (NODATA), PTR and a
/// name that does not exist (NXDOMAIN). Shuffled deterministically so that consecutive queries
/// hit different names.
pub fn query_file(services: &[BenchService]) -> String {
    let mut lines = Vec::with_capacity(services.len() * 2);
    for s in services {
        let fqdn = service_fqdn(s.index);
        lines.push(format!("{fqdn} A"));
        if s.index % 4 == 0 {
            lines.push(format!("_http._tcp.{fqdn} SRV"));
        }
        if s.index % 10 == 1 {
            lines.push(format!("{fqdn} AAAA"));
        }
        if s.index % 10 == 2 {
            lines.push(format!("{} PTR", reverse_v4(s.ip)));
        }
        if s.index % 10 == 3 {
            lines.push(format!("missing-{}.{NAMESPACE}.svc.{DOMAIN} A", s.index));
        }
    }
    // Fisher-Yates with a fixed LCG: the same order on every run and for both servers.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..lines.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let j = usize::try_from((state >> 33) % (i as u64 + 1)).unwrap_or(0);
        lines.swap(i, j);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Static zones answering the query file exactly as niwa-dns does: `cluster.local` (SOA, NS,
/// the Services' A and SRV records) and `in-addr.arpa` reverse zones of their IPs.
pub fn zone_files(services: &[BenchService], ns_ip: Ipv4Addr) -> BTreeMap<String, String> {
    let soa = |origin: &str| {
        format!(
            "$ORIGIN {origin}.\n$TTL {TTL}\n@ IN SOA ns.dns.{DOMAIN}. hostmaster.{DOMAIN}. 1 7200 1800 86400 {TTL}\n\
             @ IN NS ns.dns.{DOMAIN}.\n"
        )
    };
    let mut forward = soa(DOMAIN);
    let _ = writeln!(forward, "ns.dns IN A {ns_ip}");
    let mut reverse: BTreeMap<String, String> = BTreeMap::new();
    for s in services {
        let name = format!("{}.{NAMESPACE}.svc", service_name(s.index));
        let _ = writeln!(forward, "{name} IN A {}", s.ip);
        let _ = writeln!(
            forward,
            "_http._tcp.{name} IN SRV 0 100 80 {name}.{DOMAIN}."
        );
        let o = s.ip.octets();
        let origin = format!("{}.{}.in-addr.arpa", o[1], o[0]);
        let zone = reverse
            .entry(origin.clone())
            .or_insert_with(|| soa(&origin));
        let _ = writeln!(zone, "{}.{} IN PTR {}.", o[3], o[2], service_fqdn(s.index));
    }
    let mut zones = BTreeMap::from([(DOMAIN.to_string(), forward)]);
    zones.extend(reverse);
    zones
}

/// Writes Knot's configuration for `zones` (already written as `<origin>.zone` in `dir`).
pub fn knot_config(dir: &Path, listen: SocketAddr, zones: &BTreeMap<String, String>) -> String {
    let dir = dir.display();
    let mut conf = format!(
        "server:\n    rundir: \"{dir}\"\n    listen: {}\n\
         database:\n    storage: \"{dir}/db\"\n\
         template:\n  - id: default\n    storage: \"{dir}\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         zone:\n",
        crate::procs::knot_addr(listen)
    );
    for origin in zones.keys() {
        let _ = writeln!(conf, "  - domain: {origin}\n    file: {origin}.zone");
    }
    conf
}

/// One UDP question; the answer's addresses (A) and whether it came back at all.
pub async fn ask_a(server: SocketAddr, name: &str) -> Option<Vec<IpAddr>> {
    let name = Name::from_ascii(name).ok()?;
    let mut query = Message::new(1, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name, RecordType::A));
    let bytes = query.to_vec().ok()?;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.send_to(&bytes, server).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    let reply = Message::from_vec(&buf[..n]).ok()?;
    Some(
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect(),
    )
}

/// Checks that `server` answers the last Service with its IP.
pub async fn answers_last(server: SocketAddr, services: &[BenchService]) -> bool {
    let Some(last) = services.last() else {
        return true;
    };
    ask_a(server, &format!("{}.", service_fqdn(last.index))).await
        == Some(vec![IpAddr::V4(last.ip)])
}

pub fn ensure_nonempty(services: &[BenchService]) -> Result<()> {
    if services.is_empty() {
        bail!("no Services were created");
    }
    Ok(())
}
