//! niwa-ingress against a real apiserver, checked with curl (HTTP/1.1, h2c, TLS with SNI and h2).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use niwa_client::Api;
use niwa_testkit::ControlPlane;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn block() -> u8 {
    (std::process::id() % 200) as u8 + 30
}

/// An HTTP/1.1 backend answering `name=<name> path=<path> <x-forwarded-* headers>`.
async fn backend(ip: IpAddr, name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .unwrap_or("")
                        .to_string();
                    let mut body = format!("name={name} path={path}");
                    for line in lines {
                        let lower = line.to_ascii_lowercase();
                        if lower.starts_with("x-forwarded-") || lower.starts_with("host:") {
                            body.push_str(&format!(" {lower}"));
                        }
                    }
                    body.push('\n');
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn create<K: niwa_client::api::Object>(api: &Api<K>, value: Value) -> K {
    let obj: K = serde_json::from_value(value).expect("object");
    api.create(&obj).await.expect("create")
}

/// A Service `name` with port 80 named `http`, and a slice with `endpoints`.
async fn service_with_endpoints(cp: &ControlPlane, name: &str, endpoints: &[SocketAddr]) {
    create::<Service>(
        &cp.client().namespaced("default"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
               "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    let port = endpoints.first().map(|e| e.port()).unwrap_or(8080);
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({"addresses": [e.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    create::<EndpointSlice>(
        &cp.client().namespaced("default"),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{name}-1"), "namespace": "default",
                            "labels": {"kubernetes.io/service-name": name}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": port}], "endpoints": eps}),
    )
    .await;
}

struct Curl {
    status: u16,
    body: String,
    http_version: String,
}

/// curl with `host` resolved to the ingress address.
fn curl(scheme: &str, host: &str, addr: SocketAddr, path: &str, extra: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args([
            "-s",
            "-k",
            "--max-time",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args([
            "--resolve",
            &format!("{host}:{}:{}", addr.port(), addr.ip()),
        ])
        .args(extra)
        .arg(format!("{scheme}://{host}:{}{path}", addr.port()))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut tail = tail.split_whitespace();
    Curl {
        status: tail.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        http_version: tail.next().unwrap_or("").to_string(),
        body: body.to_string(),
    }
}

async fn eventually_status(
    scheme: &str,
    host: &str,
    addr: SocketAddr,
    path: &str,
    want: u16,
) -> Curl {
    let start = Instant::now();
    loop {
        let (scheme2, host2, path2) = (scheme.to_string(), host.to_string(), path.to_string());
        let got = tokio::task::spawn_blocking(move || curl(&scheme2, &host2, addr, &path2, &[]))
            .await
            .expect("curl");
        if got.status == want {
            return got;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!(
                "{scheme}://{host}{path}: wanted {want}, last got {} {}",
                got.status, got.body
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_routes_hosts_and_paths_with_tls_h2_and_status() {
    let cp = ControlPlane::start().await;
    let b = block();
    let ip = |n| IpAddr::V4(Ipv4Addr::new(127, 244, b, n));
    let foo = backend(ip(1), "foo").await;
    let bar = backend(ip(2), "bar").await;
    service_with_endpoints(&cp, "foo", &[foo]).await;
    service_with_endpoints(&cp, "bar", &[bar]).await;
    service_with_endpoints(&cp, "empty", &[]).await;

    let publish = IpAddr::V4(Ipv4Addr::new(127, 200, b, 250));
    let mut config =
        niwa_ingress::IngressConfig::new(&cp.api_url(), "127.0.0.1:0".parse().expect("addr"));
    config.https_listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.metrics_listen = "127.0.0.1:0".parse().expect("addr");
    config.publish_ip = Some(publish);
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(niwa_ingress::run(config, shutdown.clone(), Some(tx)));
    let bound = rx.await.expect("ingress started");
    let https = bound.https.expect("https");

    // The class exists and is the default.
    let class: IngressClass = cp
        .client()
        .cluster::<IngressClass>()
        .get("niwa")
        .await
        .expect("class");
    assert!(niwa_ingress::class::is_default(&class));

    // A self-signed certificate for a.test in a kubernetes.io/tls Secret.
    let cert = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).expect("cert");
    let mut secret = Secret::default();
    secret.metadata.name = Some("a-tls".into());
    secret.metadata.namespace = Some("default".into());
    secret.type_ = Some("kubernetes.io/tls".into());
    secret.data = Some(
        [
            (
                "tls.crt".to_string(),
                ByteString(cert.cert.pem().into_bytes()),
            ),
            (
                "tls.key".to_string(),
                ByteString(cert.signing_key.serialize_pem().into_bytes()),
            ),
        ]
        .into(),
    );
    cp.client()
        .namespaced::<Secret>("default")
        .create(&secret)
        .await
        .expect("secret");

    // No class named: ours, because niwa is the default class.
    let ingresses: Api<Ingress> = cp.client().namespaced("default");
    create(
        &ingresses,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "site", "namespace": "default"},
               "spec": {
                 "tls": [{"hosts": ["a.test"], "secretName": "a-tls"}],
                 "rules": [
                   {"host": "a.test", "http": {"paths": [
                     {"path": "/foo", "pathType": "Prefix", "backend": {"service": {"name": "foo", "port": {"number": 80}}}},
                     {"path": "/bar", "pathType": "Prefix", "backend": {"service": {"name": "bar", "port": {"name": "http"}}}},
                     {"path": "/down", "pathType": "Exact", "backend": {"service": {"name": "empty", "port": {"number": 80}}}},
                     {"path": "/gone", "pathType": "Exact", "backend": {"service": {"name": "missing", "port": {"number": 80}}}}
                   ]}},
                   {"host": "*.b.test", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "bar", "port": {"number": 80}}}}
                   ]}}
                 ]}}),
    )
    .await;
    // Another controller's Ingress is left alone.
    create(
        &ingresses,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "theirs", "namespace": "default"},
               "spec": {"ingressClassName": "other", "rules": [{"host": "c.test", "http": {"paths": [
                 {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "foo", "port": {"number": 80}}}}]}}]}}),
    )
    .await;

    let got = eventually_status("http", "a.test", bound.http, "/foo/x?q=1", 200).await;
    assert!(
        got.body.starts_with("name=foo path=/foo/x?q=1"),
        "{}",
        got.body
    );
    assert!(
        got.body.contains("x-forwarded-for: 127.0.0.1"),
        "{}",
        got.body
    );
    assert!(got.body.contains("x-forwarded-proto: http"), "{}", got.body);
    assert!(
        got.body.contains("x-forwarded-host: a.test"),
        "{}",
        got.body
    );
    assert!(got.body.contains("host: a.test"), "{}", got.body);
    assert_eq!(got.http_version, "1.1");
    let bar_reply = curl("http", "a.test", bound.http, "/bar", &[]);
    assert!(
        bar_reply.body.starts_with("name=bar "),
        "{}",
        bar_reply.body
    );
    // Element-wise prefix: /foobar is not under /foo.
    assert_eq!(
        curl("http", "a.test", bound.http, "/foobar", &[]).status,
        404
    );
    // Virtual hosts: a wildcard host goes to bar; an unknown host is 404 (no default backend).
    assert!(
        curl("http", "x.b.test", bound.http, "/foo", &[])
            .body
            .starts_with("name=bar ")
    );
    assert_eq!(curl("http", "c.test", bound.http, "/", &[]).status, 404);
    // No endpoints / no Service: 503.
    let down = curl("http", "a.test", bound.http, "/down", &[]);
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("no ready endpoints"), "{}", down.body);
    assert_eq!(curl("http", "a.test", bound.http, "/gone", &[]).status, 503);
    // h2 with prior knowledge on the plain port.
    let h2c = curl(
        "http",
        "a.test",
        bound.http,
        "/foo",
        &["--http2-prior-knowledge"],
    );
    assert_eq!(
        (h2c.status, h2c.http_version.as_str()),
        (200, "2"),
        "{}",
        h2c.body
    );
    assert!(h2c.body.starts_with("name=foo "));

    // TLS by SNI, h2 by ALPN; the backend learns it was https.
    let tls = eventually_status("https", "a.test", https, "/foo", 200).await;
    assert!(
        tls.body.contains("x-forwarded-proto: https"),
        "{}",
        tls.body
    );
    let tls2 = curl("https", "a.test", https, "/bar", &["--http2"]);
    assert_eq!((tls2.status, tls2.http_version.as_str()), (200, "2"));
    let tls11 = curl("https", "a.test", https, "/bar", &["--http1.1"]);
    assert_eq!((tls11.status, tls11.http_version.as_str()), (200, "1.1"));

    // status.loadBalancer is published on ours, not on theirs.
    let start = Instant::now();
    loop {
        let site = ingresses.get("site").await.expect("get");
        let ips: Vec<String> = site
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip)
            .collect();
        if ips == vec![publish.to_string()] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "status not published: {ips:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let theirs = ingresses.get("theirs").await.expect("get");
    assert!(
        theirs
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .is_none()
    );

    // Endpoint changes apply: foo's slice now points at bar's server.
    let slices: Api<EndpointSlice> = cp.client().namespaced("default");
    let mut slice = slices.get("foo-1").await.expect("slice");
    slice.endpoints[0].addresses = vec![bar.ip().to_string()];
    slice.ports.as_mut().expect("ports")[0].port = Some(i32::from(bar.port()));
    slices.replace(&slice).await.expect("replace");
    let start = Instant::now();
    loop {
        let reply = curl("http", "a.test", bound.http, "/foo", &[]);
        if reply.body.starts_with("name=bar ") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "endpoint change not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts niwa-ingress (HTTP only) against `cp`; it stops when the returned token is dropped.
async fn start_ingress(cp: &ControlPlane) -> (SocketAddr, tokio_util::sync::DropGuard) {
    let mut config =
        niwa_ingress::IngressConfig::new(&cp.api_url(), "127.0.0.1:0".parse().expect("addr"));
    config.metrics_listen = "127.0.0.1:0".parse().expect("addr");
    let shutdown = CancellationToken::new();
    let guard = shutdown.clone().drop_guard();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(niwa_ingress::run(config, shutdown, Some(tx)));
    let bound = rx.await.expect("ingress started");
    (bound.http, guard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_beats_prefix_and_the_default_backend_catches_the_rest() {
    let cp = ControlPlane::start().await;
    let b = block();
    let ip = |n| IpAddr::V4(Ipv4Addr::new(127, 244, b, n));
    let exact = backend(ip(11), "exact").await;
    let prefix = backend(ip(12), "prefix").await;
    let fallback = backend(ip(13), "fallback").await;
    service_with_endpoints(&cp, "exact", &[exact]).await;
    service_with_endpoints(&cp, "prefix", &[prefix]).await;
    service_with_endpoints(&cp, "fallback", &[fallback]).await;
    let (http, _guard) = start_ingress(&cp).await;

    // The class named explicitly; rules without a host; a default backend.
    let ingresses: Api<Ingress> = cp.client().namespaced("default");
    create(
        &ingresses,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "api", "namespace": "default"},
               "spec": {
                 "ingressClassName": "niwa",
                 "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
                 "rules": [{"http": {"paths": [
                   {"path": "/api", "pathType": "Exact", "backend": {"service": {"name": "exact", "port": {"number": 80}}}},
                   {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "prefix", "port": {"number": 80}}}}
                 ]}}]}}),
    )
    .await;

    let got = eventually_status("http", "any.test", http, "/api", 200).await;
    assert!(
        got.body.starts_with("name=exact path=/api "),
        "{}",
        got.body
    );
    // Exact does not match a trailing slash; Prefix matches element-wise.
    for (path, want) in [
        ("/api/", "prefix"),
        ("/api/v1", "prefix"),
        ("/apiary", "fallback"),
        ("/", "fallback"),
        ("/other/x", "fallback"),
    ] {
        let reply = curl("http", "any.test", http, path, &[]);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            reply.body.starts_with(&format!("name={want} path={path}")),
            "{path}: {}",
            reply.body
        );
    }

    // The default backend loses its endpoints: 503, while the rules still route.
    let slices: Api<EndpointSlice> = cp.client().namespaced("default");
    let mut slice = slices.get("fallback-1").await.expect("slice");
    slice.endpoints.clear();
    slices.replace(&slice).await.expect("replace");
    let down = eventually_status("http", "any.test", http, "/other", 503).await;
    assert!(down.body.contains("no ready endpoints"), "{}", down.body);
    assert!(
        curl("http", "any.test", http, "/api/v2", &[])
            .body
            .starts_with("name=prefix ")
    );

    // Without the Ingress nothing matches: 404.
    ingresses
        .delete("api", &Default::default())
        .await
        .expect("delete");
    eventually_status("http", "any.test", http, "/api", 404).await;
}
