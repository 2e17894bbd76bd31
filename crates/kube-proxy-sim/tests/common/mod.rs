//! A control plane, one niwa-proxy in-process, and backends (plain TCP/UDP servers that name
//! themselves) on the test's own random 127.x block.
#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use niwa_client::Api;
pub use niwa_proxy::plane::Mode;
use niwa_testkit::ControlPlane;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const NODE: &str = "node-a";

/// A third octet no other test of this process uses (the seed is fixed per process and 37 is
/// coprime with 250), and unlikely to be used by another process.
fn block() -> u8 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SEED: OnceLock<u32> = OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    ((seed % 250 + n * 37) % 250) as u8 + 2
}

pub struct Env {
    pub cp: ControlPlane,
    pub block: u8,
    pub node_ip: IpAddr,
    pub metrics: SocketAddr,
    shutdown: CancellationToken,
    proxy: Option<JoinHandle<()>>,
    backends: Vec<JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for b in &self.backends {
            b.abort();
        }
    }
}

/// Whether the nftables tests are to run: yes unless `NIWA_PROXY_NFT_TESTS=0`. They never pass
/// silently without nft: a proxy that cannot create its table fails the test with the reason.
pub fn nft_tests_wanted() -> bool {
    std::env::var("NIWA_PROXY_NFT_TESTS").map_or(true, |v| v != "0")
}

/// The proxy's nftables table, from its `niwa_proxy_mode` metric.
pub fn table_of(metrics: &str) -> Option<String> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("niwa_proxy_mode{") && l.contains("mode=\"nftables\""))?;
    let start = line.find("table=\"")? + "table=\"".len();
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

/// The names of the `ip` family nftables tables.
pub fn nft_tables() -> Vec<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "tables", "ip"])
        .output()
        .expect("run nft");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip ").map(str::to_string))
        .collect()
}

impl Env {
    /// A userspace-mode proxy.
    pub async fn start() -> Env {
        Env::start_mode(Mode::Userspace).await
    }

    /// An nftables-mode proxy; `None` (with a note) when `NIWA_PROXY_NFT_TESTS=0`.
    pub async fn start_nft() -> Option<Env> {
        if !nft_tests_wanted() {
            eprintln!("NIWA_PROXY_NFT_TESTS=0: nftables test skipped");
            return None;
        }
        Some(Env::start_mode(Mode::Nftables).await)
    }

    /// A proxy in `mode`: `Mode::Nftables` panics with the reason when nft cannot be used.
    pub async fn start_mode(mode: Mode) -> Env {
        let cp = ControlPlane::start().await;
        let block = block();
        let node_ip = IpAddr::V4(Ipv4Addr::new(127, 1, block, 1));
        let shutdown = CancellationToken::new();
        let mut config = niwa_proxy::ProxyConfig::new(&cp.api_url(), NODE, node_ip);
        config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
        config.limits.connect_timeout = Duration::from_secs(2);
        config.mode = mode;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
        let token = shutdown.clone();
        let proxy = tokio::spawn(async move {
            if let Err(e) = niwa_proxy::run(config, token, Some(tx)).await {
                let _ = failed_tx.send(e.to_string());
            }
        });
        let metrics = match rx.await {
            Ok(addr) => addr,
            Err(_) => {
                let why = failed_rx.await.unwrap_or_else(|_| "unknown".into());
                panic!(
                    "niwa-proxy ({mode}) did not start: {why}\nnftables tests need root (or \
                     CAP_NET_ADMIN) and `nft`; set NIWA_PROXY_NFT_TESTS=0 to skip them"
                );
            }
        };
        Env {
            cp,
            block,
            node_ip,
            metrics,
            shutdown,
            proxy: Some(proxy),
            backends: Vec::new(),
        }
    }

    /// Stops the proxy and waits until it has shut down.
    pub async fn stop_proxy(&mut self) {
        self.shutdown.cancel();
        if let Some(proxy) = self.proxy.take() {
            let _ = proxy.await;
        }
    }

    /// 127.96.<block>.n — a ClusterIP of this test.
    pub fn cluster_ip(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 96, self.block, n))
    }

    /// 127.244.<block>.n — a pod IP of this test.
    pub fn pod_ip(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 244, self.block, n))
    }

    /// 127.200.<block>.n — a LoadBalancer IP of this test.
    pub fn lb_ip(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 200, self.block, n))
    }

    pub fn services(&self) -> Api<Service> {
        self.cp.client().namespaced("default")
    }

    pub fn slices(&self) -> Api<EndpointSlice> {
        self.cp.client().namespaced("default")
    }

    pub async fn create_service(&self, name: &str, spec: Value) -> Service {
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec
        }))
        .expect("service");
        self.services()
            .create(&svc)
            .await
            .unwrap_or_else(|e| panic!("create service {name}: {e}"))
    }

    /// Creates or replaces the slice `name` of Service `service` with `endpoints`
    /// (`(ip, ready, node)`) on the named ports `(name, port, protocol)`.
    pub async fn put_slice(
        &self,
        name: &str,
        service: &str,
        ports: &[(&str, u16, &str)],
        endpoints: &[(IpAddr, bool, &str)],
    ) {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto}))
            .collect();
        let endpoints: Vec<Value> = endpoints
            .iter()
            .map(|(ip, ready, node)| {
                json!({"addresses": [ip.to_string()], "nodeName": node,
                       "conditions": {"ready": ready, "serving": ready, "terminating": false}})
            })
            .collect();
        let mut slice: EndpointSlice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints
        }))
        .expect("slice");
        let api = self.slices();
        match api.get_opt(name).await.expect("get slice") {
            Some(old) => {
                slice.metadata.resource_version = old.metadata.resource_version;
                api.replace(&slice).await.expect("replace slice");
            }
            None => {
                api.create(&slice).await.expect("create slice");
            }
        }
    }

    /// TCP backends on `pods` (see [`Env::tcp_backends`]) behind Service `name` (port `http`)
    /// on ClusterIP `cluster_ip(n)`:`port`, its slice `<name>-1` holding the first pod only.
    /// Returns the Service address and the backends' port, once it serves.
    pub async fn service_on_first_pod(
        &mut self,
        name: &str,
        n: u8,
        port: u16,
        pods: &[IpAddr],
    ) -> (SocketAddr, u16) {
        let target = self.tcp_backends(pods).await;
        let vip = self.cluster_ip(n);
        self.create_service(
            name,
            json!({"clusterIP": vip.to_string(), "ports": [{"name": "http", "port": port, "targetPort": target}]}),
        )
        .await;
        self.put_slice(
            &format!("{name}-1"),
            name,
            &[("http", target, "TCP")],
            &[(pods[0], true, NODE)],
        )
        .await;
        let addr = SocketAddr::new(vip, port);
        assert_eq!(wait_serving(addr).await, format!("backend-{}", pods[0]));
        (addr, target)
    }

    /// Starts TCP backends on each IP, all on one port; each answers every connection with
    /// `name\n`, then echoes what it reads.
    pub async fn tcp_backends(&mut self, ips: &[IpAddr]) -> u16 {
        let first = TcpListener::bind(SocketAddr::new(ips[0], 0))
            .await
            .expect("bind backend");
        let port = first.local_addr().expect("addr").port();
        let mut listeners = vec![first];
        for ip in &ips[1..] {
            listeners.push(
                TcpListener::bind(SocketAddr::new(*ip, port))
                    .await
                    .expect("bind backend"),
            );
        }
        for listener in listeners {
            let name = format!("backend-{}", listener.local_addr().expect("addr").ip());
            self.backends.push(tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let name = name.clone();
                    tokio::spawn(async move {
                        if stream
                            .write_all(format!("{name}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let mut buf = [0u8; 4096];
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if stream.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }));
        }
        port
    }

    /// UDP backends: each answers a datagram with `name:payload`.
    pub async fn udp_backends(&mut self, ips: &[IpAddr]) -> u16 {
        let first = UdpSocket::bind(SocketAddr::new(ips[0], 0))
            .await
            .expect("bind backend");
        let port = first.local_addr().expect("addr").port();
        let mut sockets = vec![first];
        for ip in &ips[1..] {
            sockets.push(
                UdpSocket::bind(SocketAddr::new(*ip, port))
                    .await
                    .expect("bind backend"),
            );
        }
        for socket in sockets {
            let name = format!("backend-{}", socket.local_addr().expect("addr").ip());
            self.backends.push(tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                        return;
                    };
                    let mut reply = format!("{name}:").into_bytes();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = socket.send_to(&reply, from).await;
                }
            }));
        }
        port
    }

    pub async fn metrics_text(&self) -> String {
        metrics_at(self.metrics).await
    }
}

/// The Prometheus text of the proxy serving metrics on `addr`.
pub async fn metrics_at(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// The sum of `metric`'s samples whose labels contain `label` (e.g. `service="default/web:http"`).
pub fn metric_sum(text: &str, metric: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Connects and reads the backend's name line (the connection stays open in the result).
pub async fn connect_name(addr: SocketAddr) -> std::io::Result<(String, TcpStream)> {
    connect_name_from(addr, None).await
}

/// As [`connect_name`], from a chosen local IP (a distinct "client").
pub async fn connect_name_from(
    addr: SocketAddr,
    local: Option<IpAddr>,
) -> std::io::Result<(String, TcpStream)> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let mut stream = tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok((String::from_utf8_lossy(&line).into_owned(), stream))
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `addr` accepts and answers, returning the first backend name.
pub async fn wait_serving(addr: SocketAddr) -> String {
    eventually(
        &format!("{addr} to serve"),
        Duration::from_secs(10),
        || async { connect_name(addr).await.ok().map(|(name, _)| name) },
    )
    .await
}

/// Waits until connecting to `addr` is refused (no endpoints: the kernel or the reject rule
/// answers with a reset), panicking with `what` after five seconds.
pub async fn eventually_refused(what: &str, addr: SocketAddr) {
    eventually(what, Duration::from_secs(5), || async {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await;
}
