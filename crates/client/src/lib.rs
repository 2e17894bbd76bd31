//! # niwa-client
//!
//! The typed gRPC client of niwa's apiserver, and the controller runtime every niwa component
//! (scheduler, controllers, kubelet, proxy, dns) is built on. kube-rs is the model; names follow
//! it where they can.
//!
//! Where to start reading:
//! * [`Client`] connects; [`Api<K>`] has the verbs for one kind (get, list, create, replace,
//!   patch, delete, watch, `bind` for pods, the status subresource); [`DynamicApi`] the same
//!   over `serde_json::Value` for kinds known only at run time. Objects are k8s-openapi types
//!   ([`k8s`]); they travel as their Kubernetes JSON over niwa's gRPC API
//!   (proto/niwa/api/v1/resources.proto).
//! * [`Error`]: an API error carries the Kubernetes `Status` ([`ApiError`]: reason, code, field
//!   causes); ask it `is_not_found()`, `is_conflict()`, `is_already_exists()`, `is_expired()`,
//!   `is_invalid()`. [`retry::on_conflict`] retries read-modify-write loops.
//! * [`runtime`]: [`watcher()`] (list → watch → re-list on 410, with backoff), [`reflector()`]
//!   stores, the [`WorkQueue`] (dedupe, in-flight exclusivity, delayed and rate-limited requeue)
//!   and the [`Controller`] loop. [`leader`]: Lease-based leader election. [`events`]: the
//!   event recorder with client-go's aggregation.
//!
//! ## A controller
//!
//! Level-triggered: watch events only queue keys; `reconcile` reads the current object from the
//! cache, compares desired with observed state, acts idempotently, and says when to look again.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use niwa_client::k8s::api::apps::v1::ReplicaSet;
//! use niwa_client::k8s::api::core::v1::Pod;
//! use niwa_client::runtime::watcher;
//! use niwa_client::{Action, Api, Client, Controller, ResourceExt};
//! use tokio_util::sync::CancellationToken;
//!
//! struct Ctx {
//!     pods: Api<Pod>,
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! enum ReconcileError {
//!     #[error(transparent)]
//!     Api(#[from] niwa_client::Error),
//! }
//!
//! async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
//!     let selector = format!("app={}", rs.name_any());
//!     let pods = ctx.pods.in_namespace(&rs.namespace().unwrap_or_default());
//!     let have = pods.list(&niwa_client::ListParams::default().labels(&selector)).await?;
//!     let want = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) as usize;
//!     tracing::info!(rs = %rs.name_any(), have = have.items.len(), want, "reconciling");
//!     // ... create or delete pods (with an ownerReference: rs.controller_owner_ref()) ...
//!     Ok(Action::requeue(Duration::from_secs(300)))
//! }
//!
//! fn error_policy(_rs: Arc<ReplicaSet>, _err: &ReconcileError, _ctx: Arc<Ctx>) -> Action {
//!     Action::requeue_with_backoff()
//! }
//!
//! # async fn run() -> Result<(), niwa_client::Error> {
//! let client = Client::connect("http://127.0.0.1:6443").await?;
//! let shutdown = CancellationToken::new();
//! let ctx = Arc::new(Ctx { pods: client.all() });
//! Controller::new(client.all::<ReplicaSet>(), watcher::Config::default())
//!     .owns(client.all::<Pod>(), watcher::Config::default())
//!     .run(reconcile, error_policy, ctx, 4, shutdown)
//!     .await;
//! # Ok(()) }
//! ```
//!
//! Tests: the `niwa-testkit` crate starts a store and an apiserver in-process
//! (`niwa_testkit::ControlPlane::start().await`, then `cp.client()`).

pub mod api;
pub mod client;
pub mod dynamic;
pub mod error;
pub mod events;
pub mod leader;
pub mod object;
pub mod params;
pub mod raw;
pub mod retry;
pub mod runtime;

pub use api::{Api, Object, WatchStream};
pub use client::Client;
pub use dynamic::DynamicApi;
pub use error::{Error, Result};
pub use events::{EventType, Recorder};
pub use k8s_openapi as k8s;
pub use leader::{LeaderConfig, LeaderElector};
pub use niwa_api::{ApiError, Cause, Reason};
pub use object::{ObjectList, ObjectRef, ResourceExt, WatchEvent};
pub use params::{
    DeleteParams, ListParams, Patch, PostParams, Propagation, VersionMatch, WatchParams,
};
pub use runtime::reflector::store;
pub use runtime::{Action, Controller, Store, WorkQueue, reflector, watcher};
