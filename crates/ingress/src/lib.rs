//! # niwa-ingress
//!
//! networking.k8s.io/v1 Ingress for niwa (IngressClass `niwa`, created as the cluster's default):
//! an HTTP/1.1 and h2 reverse proxy with TLS from Secrets (rustls, SNI), sending each request
//! straight to a ready endpoint of the backend Service, with `X-Forwarded-*` headers; 404 when no
//! rule matches, 503 when the backend has no endpoint. It writes its address into each Ingress's
//! `status.loadBalancer`.
//!
//! Where to start reading:
//! * [`routing`] — the IO-free core: Ingresses → a [`routing::RouteTable`]; host and path → backend.
//! * [`backends`] — a backend → its ready endpoints; [`class`] — which Ingresses are ours.
//! * [`snapshot`] — the consistent view requests use; [`proxy`] — the request path;
//!   [`tls`] — certificates by SNI.
//! * [`server::run`] — watches, sync loop, status writer and the listeners.
//!
//! Not implemented: WebSocket/`Upgrade` passthrough, HTTPS to backends, annotations
//! (rewrites, redirects, auth), HTTP→HTTPS redirects.

pub mod backends;
pub mod class;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod tls;

pub use server::{Bound, IngressConfig, IngressError, run};
