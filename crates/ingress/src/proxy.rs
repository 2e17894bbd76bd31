//! The request path: route by host and path, pick an endpoint, forward over HTTP/1.1 with
//! `X-Forwarded-*` headers; 404 when no rule matches, 503 when the backend has no endpoint, 502
//! when the endpoint fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::RwLock;
use tracing::debug;

use crate::metrics::{Metrics, RequestLabels};
use crate::routing::{Backend, Decision, ObjectKey};
use crate::snapshot::Snapshot;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// What every request handler shares.
pub struct Proxy {
    pub snapshot: Arc<RwLock<Arc<Snapshot>>>,
    pub client: Client<HttpConnector, Incoming>,
    pub metrics: Metrics,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) are never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Where the request is connected from and to.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

impl Proxy {
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let start = Instant::now();
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let path = req.uri().path().to_string();
        let snapshot = self.snapshot.read().clone();
        let (backend, ingress) = match snapshot.routes.route(&host, &path) {
            Decision::Route(route) => (route.backend.clone(), Some(route.ingress.clone())),
            Decision::Default(backend, ingress) => (backend.clone(), Some(ingress.clone())),
            Decision::NotFound => {
                let response = text(
                    StatusCode::NOT_FOUND,
                    format!("404 Not Found: no Ingress rule matches host {host:?} path {path:?}\n"),
                );
                self.observe(None, None, &response, start);
                return response;
            }
        };
        let service = match &backend {
            Backend::Service { service, .. } => Some(service.clone()),
            Backend::Invalid { .. } => None,
        };
        let target = match snapshot.target(&backend) {
            Ok(t) => t,
            Err(reason) => {
                let response = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("503 Service Unavailable: {reason}\n"),
                );
                self.observe(ingress.as_ref(), service.as_ref(), &response, start);
                return response;
            }
        };
        let Some(endpoint) = target.pick() else {
            let response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable\n".into(),
            );
            self.observe(ingress.as_ref(), service.as_ref(), &response, start);
            return response;
        };
        let response = match self.forward(req, endpoint, &host, conn).await {
            Ok(r) => r,
            Err(e) => {
                debug!(%endpoint, error = %e, "backend failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("502 Bad Gateway: endpoint {endpoint} failed\n"),
                )
            }
        };
        self.observe(ingress.as_ref(), service.as_ref(), &response, start);
        response
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        endpoint: SocketAddr,
        host: &str,
        conn: ConnInfo,
    ) -> Result<Response<Body>, hyper_util::client::legacy::Error> {
        let (mut parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = Uri::try_from(format!("http://{endpoint}{path_and_query}"))
            .unwrap_or_else(|_| Uri::from_static("/"));
        parts.version = Version::HTTP_11;
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers);
        if let Ok(value) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, value.clone());
            headers.insert("x-forwarded-host", value);
        }
        let client_ip = conn.peer.ip().to_string();
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {client_ip}"),
            None => client_ip.clone(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            headers.insert("x-forwarded-for", v);
        }
        if let Ok(v) = HeaderValue::from_str(&client_ip) {
            headers.insert("x-real-ip", v);
        }
        let proto = if conn.tls { "https" } else { "http" };
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
        headers.insert("x-forwarded-port", HeaderValue::from(conn.local.port()));
        let response = self
            .client
            .request(Request::from_parts(parts, body))
            .await?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    fn observe(
        &self,
        ingress: Option<&ObjectKey>,
        service: Option<&ObjectKey>,
        response: &Response<Body>,
        start: Instant,
    ) {
        let labels = RequestLabels {
            namespace: ingress.map(|i| i.namespace.clone()).unwrap_or_default(),
            ingress: ingress.map(|i| i.name.clone()).unwrap_or_default(),
            service: service.map(|s| s.name.clone()).unwrap_or_default(),
            status: response.status().as_u16().to_string(),
        };
        self.metrics.requests.get_or_create(&labels).inc();
        self.metrics.duration.observe(start.elapsed().as_secs_f64());
    }
}
