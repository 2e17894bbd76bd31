//! # niwa-dns
//!
//! niwa's cluster DNS: Kubernetes DNS-based service discovery (schema 1.1.0) served on
//! `hickory-server`, answering as CoreDNS's `kubernetes`, `forward` and `cache` plugins do.
//!
//! Where to start reading:
//! * [`zone`] — the IO-free index of Services, EndpointSlices and Pods that answers every cluster
//!   question (records, NXDOMAIN versus NODATA, REFUSED for wildcards). Golden tests live there.
//! * [`sync`] — watchers that keep the zone current (no polling, no reloads).
//! * [`handler`] — the hickory `RequestHandler`: validation, zone or [`forward`], response.
//! * [`forward`] — upstream resolvers with a response cache and negative caching.
//! * [`udp`] — the UDP path: a socket per core and a cache of pre-encoded answers
//!   ([`udp::cache`]) versioned by the zone's serial ([`shared_zone`]).
//! * [`server`] — [`run`]: sockets, tasks, shutdown. [`kube_dns`] — the `kube-dns` Service helper
//!   for whoever brings the cluster up.

pub mod forward;
pub mod handler;
mod http;
pub mod kube_dns;
pub mod metrics;
pub mod server;
pub mod shared_zone;
pub mod sync;
pub mod udp;
pub mod zone;

pub use kube_dns::ensure_kube_dns_service;
pub use server::{DnsConfig, DnsError, Running, run, start};
