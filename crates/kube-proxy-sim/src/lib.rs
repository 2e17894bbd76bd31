//! # niwa-proxy (kube-proxy-sim)
//!
//! The Service data plane of one node. Two data paths (`--mode`): `nftables` programs the
//! kernel to DNAT Service addresses to endpoints (kube-proxy's nftables mode; no extra hop), and
//! `userspace`, the fallback without CAP_NET_ADMIN, is an L4 proxy that makes every Service reachable
//! on its ClusterIPs, NodePorts (node IP), LoadBalancer ingress IPs and externalIPs, forwarding
//! TCP connections (small messages through a small buffer, bulk transfers with `splice(2)` so
//! payload never enters userspace) and UDP flows to ready endpoints, balanced round robin or
//! pinned by `sessionAffinity: ClientIP`.
//!
//! Where to start reading:
//! * [`model`] — the IO-free core: [`model::desired`] turns Services + EndpointSlices into the
//!   node's listeners, [`model::balancer`] picks a backend.
//! * [`cache`] — the watched objects, recomputing only the Services that changed.
//! * [`sync`] — the watch loop that batches changes and applies them.
//! * [`plane`] — picks the data path; [`model::nft`] renders the nftables transactions (IO-free)
//!   and [`dataplane::nft`] runs them.
//! * [`dataplane`] — sockets: [`dataplane::DataPlane::apply`] reconciles them; [`dataplane::tcp`],
//!   [`dataplane::udp`] and [`dataplane::splice`] move the bytes.
//! * [`server::run`] — wires it all together with /healthz, /readyz, /livez and /metrics.
//!
//! Not implemented: SCTP, `loadBalancerSourceRanges`, topology-aware routing hints, the
//! `healthCheckNodePort` server, IPv6 beyond what the kernel gives for free.

pub mod cache;
pub mod dataplane;
pub mod metrics;
pub mod model;
pub mod plane;
pub mod server;
pub mod sync;

pub use server::{ProxyConfig, ProxyError, run};
