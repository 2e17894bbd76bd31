//! # niwa-dns
//!
//! niwa's cluster DNS: Kubernetes DNS-based service discovery (schema 1.1.0) served on
//! `hickory-server`, answering as CoreDNS's `kubernetes`, `forward` and `cache` plugins do.
//!
//! Where to start reading:
//! * [`zone`] — the IO-free index of Services, EndpointSlices and Pods that answers every cluster
//!   question (records, NXDOMAIN versus NODATA, REFUSED for wildcards). Golden tests live there.
//! * [`handler`] — the hickory `RequestHandler`: validation, zone or [`forward`], response.
//! * [`forward`] — upstream resolvers with a response cache and negative caching.

pub mod forward;
pub mod handler;
pub mod metrics;
pub mod zone;
