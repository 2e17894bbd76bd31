//! Every controller of the controller-manager, one directory each (an IO-free `core` with the
//! decisions, and the shell in its `mod.rs`), the list `--controllers` selects from
//! ([`CONTROLLERS`]), and what the shells share ([`Shared`]).
//!
//! Adding a controller: a directory here, an entry in [`CONTROLLERS`] and a branch in [`start`].

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use niwa_client::Client;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::EventSink;
use crate::informer::Informer;
use crate::util::expectations::Seen;
use selection::ControllerName;

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoint;
pub mod endpointslice;
pub mod garbagecollector;
pub mod job;
pub mod keyed;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod pod_control;
pub mod replicaset;
pub mod selection;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod volume;

/// The controllers this binary runs, with Kubernetes' names.
pub const CONTROLLERS: &[ControllerName] = &[
    ControllerName {
        name: "replicaset-controller",
        alias: "replicaset",
        enabled_by_default: true,
    },
    ControllerName {
        name: "deployment-controller",
        alias: "deployment",
        enabled_by_default: true,
    },
    ControllerName {
        name: "daemonset-controller",
        alias: "daemonset",
        enabled_by_default: true,
    },
    ControllerName {
        name: "statefulset-controller",
        alias: "statefulset",
        enabled_by_default: true,
    },
    ControllerName {
        name: "job-controller",
        alias: "job",
        enabled_by_default: true,
    },
    ControllerName {
        name: "cronjob-controller",
        alias: "cronjob",
        enabled_by_default: true,
    },
    ControllerName {
        name: "ttl-after-finished-controller",
        alias: "ttl-after-finished",
        enabled_by_default: true,
    },
    ControllerName {
        name: "endpointslice-controller",
        alias: "endpointslice",
        enabled_by_default: true,
    },
    ControllerName {
        name: "endpointslice-mirroring-controller",
        alias: "endpointslice-mirroring",
        enabled_by_default: true,
    },
    ControllerName {
        name: "endpoints-controller",
        alias: "endpoint",
        enabled_by_default: true,
    },
    ControllerName {
        name: "namespace-controller",
        alias: "namespace",
        enabled_by_default: true,
    },
    ControllerName {
        name: "serviceaccount-controller",
        alias: "serviceaccount",
        enabled_by_default: true,
    },
    ControllerName {
        name: "garbage-collector-controller",
        alias: "garbagecollector",
        enabled_by_default: true,
    },
    ControllerName {
        name: "node-ipam-controller",
        alias: "nodeipam",
        enabled_by_default: true,
    },
    ControllerName {
        name: "service-lb-controller",
        alias: "service",
        enabled_by_default: true,
    },
    ControllerName {
        name: "node-lifecycle-controller",
        alias: "nodelifecycle",
        enabled_by_default: true,
    },
    ControllerName {
        name: "persistentvolume-binder-controller",
        alias: "persistentvolume-binder",
        enabled_by_default: true,
    },
];

/// Workers per controller (`--concurrent-*-syncs`; Kubernetes' defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    pub replicaset: usize,
    pub deployment: usize,
    pub daemonset: usize,
    pub statefulset: usize,
    pub job: usize,
    pub cronjob: usize,
    pub ttl_after_finished: usize,
    pub endpoint: usize,
    pub endpointslice: usize,
    pub endpointslice_mirroring: usize,
    pub namespace: usize,
    pub serviceaccount: usize,
    pub garbage_collector: usize,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            replicaset: 5,
            deployment: 5,
            daemonset: 2,
            statefulset: 5,
            job: 5,
            cronjob: 5,
            ttl_after_finished: 5,
            endpoint: 5,
            endpointslice: 5,
            endpointslice_mirroring: 5,
            namespace: 10,
            serviceaccount: 1,
            garbage_collector: 20,
        }
    }
}

/// What every controller shell uses: the client, the shared informers, the event sink, the clock.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub pods: Informer<Pod>,
    /// Started only when a controller that needs nodes runs.
    pub nodes: Option<Informer<Node>>,
    /// Started only when a controller that needs Services runs.
    pub services: Option<Informer<Service>>,
    pub settings: crate::config::Settings,
    pub events: EventSink,
    pub clock: Clock,
    pub concurrency: Concurrency,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Shared {
    /// What the pod cache says about `namespace/name` (for expectations).
    pub fn pod_seen(&self, namespace: &str, name: &str) -> Seen {
        let key = niwa_client::ObjectRef::new(name).within(namespace);
        match self.pods.store().get(&key) {
            None => Seen::Absent,
            Some(p) if p.metadata.deletion_timestamp.is_some() => Seen::Terminating,
            Some(_) => Seen::Present,
        }
    }

    /// The cached pods `owner` controls, and with `include_orphans` its namespace's pods that
    /// have no controller (from the pod informer's owner index: the sync's own pods, not all).
    pub fn pods_of(
        &self,
        owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        include_orphans: bool,
    ) -> Vec<Arc<Pod>> {
        self.pods.owned_by(owner, include_orphans)
    }
}

/// The key of the `kind` object controlling the pod of a change (none for Resync or other owners).
pub fn owner_key(change: &crate::informer::Change<Pod>, kind: &str) -> Vec<niwa_client::ObjectRef> {
    let Some(pod) = change.object() else {
        return Vec::new();
    };
    crate::util::owner::controller_of(&pod.metadata)
        .filter(|c| c.kind == kind)
        .map(|c| {
            niwa_client::ObjectRef::new(&c.name)
                .within(pod.metadata.namespace.as_deref().unwrap_or(""))
        })
        .into_iter()
        .collect()
}

/// Perform one revision-history write (AlreadyExists and NotFound mean it is already done).
pub async fn write_revision(
    api: &niwa_client::Api<k8s_openapi::api::apps::v1::ControllerRevision>,
    step: crate::util::revision::RevisionStep,
) -> Result<(), niwa_client::Error> {
    use crate::util::revision::RevisionStep;
    let result = match step {
        RevisionStep::Create(rev) => api.create(&rev).await.map(|_| ()),
        RevisionStep::Bump(name, n) => api
            .patch(
                &name,
                &niwa_client::Patch::Merge(serde_json::json!({"revision": n})),
            )
            .await
            .map(|_| ()),
        RevisionStep::Delete(name) => api.delete(&name, &Default::default()).await.map(|_| ()),
    };
    match result {
        Err(e) if e.is_already_exists() || e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Whether a controller needs the node informer.
pub fn needs_nodes(name: &str) -> bool {
    name == "daemonset-controller" || name == "node-lifecycle-controller"
}

/// Whether a controller needs the Service informer.
pub fn needs_services(name: &str) -> bool {
    matches!(
        name,
        "endpoints-controller" | "endpointslice-controller" | "endpointslice-mirroring-controller"
    )
}

/// Run controller `name` until `shutdown`.
pub async fn start(name: &'static str, shared: Arc<Shared>, shutdown: CancellationToken) {
    tracing::info!(controller = name, "starting");
    match name {
        "replicaset-controller" => replicaset::run(shared, shutdown).await,
        "deployment-controller" => deployment::run(shared, shutdown).await,
        "daemonset-controller" => daemonset::run(shared, shutdown).await,
        "statefulset-controller" => statefulset::run(shared, shutdown).await,
        "job-controller" => job::run(shared, shutdown).await,
        "cronjob-controller" => cronjob::run(shared, shutdown).await,
        "ttl-after-finished-controller" => job::ttl::run(shared, shutdown).await,
        "endpoints-controller" => endpoint::run(shared, shutdown).await,
        "endpointslice-controller" => endpointslice::run(shared, shutdown).await,
        "endpointslice-mirroring-controller" => {
            endpointslice::mirroring::run(shared, shutdown).await
        }
        "namespace-controller" => namespace::run(shared, shutdown).await,
        "serviceaccount-controller" => serviceaccount::run(shared, shutdown).await,
        "garbage-collector-controller" => garbagecollector::run(shared, shutdown).await,
        "node-ipam-controller" => nodeipam::run(shared, shutdown).await,
        "service-lb-controller" => servicelb::run(shared, shutdown).await,
        "node-lifecycle-controller" => nodelifecycle::run(shared, shutdown).await,
        "persistentvolume-binder-controller" => volume::run(shared, shutdown).await,
        other => tracing::error!(controller = other, "no such controller"),
    }
}
