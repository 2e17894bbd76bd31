//! # niwa-proxy (kube-proxy-sim)
//!
//! The Service data plane of one node: a userspace L4 proxy that makes every Service reachable
//! on its ClusterIPs, NodePorts (node IP), LoadBalancer ingress IPs and externalIPs, forwarding
//! TCP connections (with `splice(2)`, no copy through userspace) and UDP flows to ready endpoints.
//!
//! Where to start reading:
//! * [`model`] — the IO-free core: [`model::desired`] turns Services + EndpointSlices into the
//!   node's listeners, [`model::balancer`] picks a backend (round robin, ClientIP affinity).
//!
//! Not implemented: SCTP, `loadBalancerSourceRanges`, topology-aware hints, the
//! `healthCheckNodePort` server.

pub mod dataplane;
pub mod metrics;
pub mod model;
