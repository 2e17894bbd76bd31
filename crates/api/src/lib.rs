//! # niwa-api
//!
//! niwa's object model, shared by every component. No IO.
//!
//! * Kubernetes types come from `k8s-openapi` (re-exported as [`k8s`]); objects travel as their JSON
//!   wire form, so the same bytes serve gRPC, REST and storage.
//! * [`registry`] — every kind niwa serves: group/version/resource, names, scope, verbs, subresources,
//!   and store keys. Start here.
//! * [`selector`] — label selectors (equality and set-based) and field selectors, as Kubernetes parses
//!   and matches them.
//! * [`status`] — Kubernetes `Status` errors (reason, code, field causes) and their gRPC form.
//! * [`validation`] — Kubernetes' name, label and metadata rules, and field errors in its wording.
//! * [`quantity`] — resource quantities (`100m`, `1Gi`) parsed and compared.
//! * [`kinds`] — per-kind defaulting and validation (one module per API group).
//! * [`patch`] — strategic merge patch (with Kubernetes' merge keys) and server-side apply.
//! * [`proto`] — the generic gRPC resource API (proto/niwa/api/v1/resources.proto), and
//!   [`proto::kubelet`], the kubelet API (proto/niwa/kubelet/v1/kubelet.proto).

pub use k8s_openapi as k8s;

pub mod kinds;
pub mod patch;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod status;
pub mod validation;

pub use registry::{Registry, ResourceInfo};
pub use status::{ApiError, Cause, Reason};

/// Generated code of niwa's own gRPC API (proto/niwa/api/v1).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("niwa.api.v1");

    /// The kubelet API (proto/niwa/kubelet/v1): logs and exec, proxied by the apiserver to the
    /// node that runs a pod. Owned by niwa-kubelet.
    pub mod kubelet {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("niwa.kubelet.v1");
    }
}
