//! Test support: a control plane with niwa-dns in-process, a local upstream resolver (hickory's
//! in-memory authority for `example.test.`, counting the questions it gets), and `dig`.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use niwa_dns::forward::ForwardConfig;
use niwa_dns::zone::{PodRecords, ZoneConfig};
use niwa_testkit::ControlPlane;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Addresses of `big.example.test.`: too many for a 512-byte UDP answer.
pub const BIG_RECORDS: u8 = 60;

/// The test upstream: authoritative for `example.test.`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub questions: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Counting {
    catalog: Catalog,
    questions: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl RequestHandler for Counting {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.questions.fetch_add(1, Ordering::SeqCst);
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

fn name(s: &str) -> Name {
    Name::from_str(s).expect("name")
}

impl Upstream {
    pub async fn start() -> Upstream {
        let origin = name("example.test.");
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name("ns.example.test."),
            name("hostmaster.example.test."),
            1,
            3600,
            600,
            86400,
            60,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 300, RData::SOA(soa)), 1);
        zone.upsert_mut(
            Record::from_rdata(
                name("www.example.test."),
                120,
                RData::A(A::new(127, 0, 0, 7)),
            ),
            1,
        );
        for i in 0..BIG_RECORDS {
            zone.upsert_mut(
                Record::from_rdata(
                    name("big.example.test."),
                    120,
                    RData::A(A::new(127, 0, 1, i)),
                ),
                1,
            );
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let questions = Arc::new(AtomicUsize::new(0));
        let handler = Counting {
            catalog,
            questions: questions.clone(),
        };
        // Same port on UDP and TCP.
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("udp");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().expect("addr");
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            let _ = server.shutdown_gracefully().await;
        });
        Upstream {
            addr,
            questions,
            stop,
        }
    }

    pub fn questions(&self) -> usize {
        self.questions.load(Ordering::SeqCst)
    }
}

/// A control plane, a test upstream and niwa-dns in-process.
pub struct Cluster {
    pub cp: ControlPlane,
    pub upstream: Upstream,
    pub dns: SocketAddr,
    pub metrics: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(PodRecords::Insecure).await
    }

    pub async fn start_with(pod_records: PodRecords) -> Cluster {
        let cp = ControlPlane::start().await;
        let upstream = Upstream::start().await;
        let mut zone = ZoneConfig::new("cluster.local").expect("domain");
        zone.pod_records = pod_records;
        let config = niwa_dns::DnsConfig {
            apiserver: cp.api_url(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
            zone,
            forward: ForwardConfig::new(vec![upstream.addr]),
        };
        let stop = CancellationToken::new();
        let running = niwa_dns::start(config, stop.clone())
            .await
            .expect("niwa-dns starts");
        let dns = running.dns_addr;
        let metrics = running.metrics_addr.expect("metrics address");
        tokio::spawn(async move {
            if let Err(e) = running.wait().await {
                eprintln!("niwa-dns failed: {e}");
            }
        });
        let cluster = Cluster {
            cp,
            upstream,
            dns,
            metrics,
            stop,
        };
        cluster.wait_ready().await;
        cluster
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((status, _)) = http_get(self.metrics, "/readyz").await
                && status == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "niwa-dns never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates an object from its JSON (namespaced kinds through the dynamic client).
    pub async fn create(&self, object: Value) -> Value {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = match object["kind"].as_str().expect("kind") {
            "Service" => "services",
            "EndpointSlice" => "endpointslices",
            "Pod" => "pods",
            "Namespace" => "namespaces",
            other => panic!("no resource for {other}"),
        };
        let namespace = object["metadata"]["namespace"].as_str();
        let api = self
            .cp
            .client()
            .dynamic(group, version, resource, namespace);
        api.create(&object).await.expect("create")
    }

    /// `dig @dns -p port <args>`.
    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.dns, args)
    }

    /// Asks until `accept` holds for the answer (the zone follows watches asynchronously).
    pub async fn dig_until(&self, args: &[&str], accept: impl Fn(&Dig) -> bool) -> Dig {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = self.dig(args);
            if accept(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "never got the expected answer; last:\n{}",
                d.raw
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A parsed dig answer.
#[derive(Debug)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    pub raw: String,
}

impl Dig {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The last field of each answer record (the address, target, ...).
    pub fn answer_data(&self) -> Vec<String> {
        let mut data: Vec<String> = self
            .answer
            .iter()
            .map(|l| l.split(' ').skip(4).collect::<Vec<_>>().join(" "))
            .collect();
        data.sort();
        data
    }
}

pub fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=3", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs (bind9-dnsutils)");
    let raw = String::from_utf8_lossy(&output.stdout).to_string();
    let mut dig = Dig {
        status: String::new(),
        flags: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        raw: raw.clone(),
    };
    let mut section: Option<&str> = None;
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            dig.status = rest.split(',').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            dig.flags = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
        } else if line.starts_with(";; ANSWER SECTION") {
            section = Some("answer");
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = Some("authority");
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = Some("additional");
        } else if line.trim().is_empty() || line.starts_with(';') {
            section = None;
        } else if let Some(s) = section {
            let record = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match s {
                "answer" => dig.answer.push(record),
                "authority" => dig.authority.push(record),
                _ => dig.additional.push(record),
            }
        }
    }
    dig
}

/// A minimal HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Sends raw bytes over UDP and returns the reply, if any within `wait`.
pub async fn udp_exchange(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    socket.send_to(packet, server).await.expect("send");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// A well-formed query, encoded.
pub fn query(qname: &str, qtype: RecordType, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    m.to_vec().expect("encode")
}

/// Asks over UDP in-process (cheaper than spawning dig in polling loops): the A addresses.
pub async fn resolve_a(server: SocketAddr, qname: &str) -> Option<Vec<Ipv4Addr>> {
    let reply = udp_exchange(
        server,
        &query(qname, RecordType::A, 7),
        Duration::from_secs(2),
    )
    .await?;
    let message = Message::from_vec(&reply).ok()?;
    Some(
        message
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
    )
}
