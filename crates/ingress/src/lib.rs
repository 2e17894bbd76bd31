//! # niwa-ingress
//!
//! networking.k8s.io/v1 Ingress for niwa (IngressClass `niwa`, the cluster's default): an HTTP/1.1
//! and h2 reverse proxy with TLS from Secrets (rustls, SNI), sending each request straight to a
//! ready endpoint of the backend Service.
//!
//! Where to start reading:
//! * [`routing`] — the IO-free core: Ingresses → a [`routing::RouteTable`]; host and path → backend.

pub mod routing;
