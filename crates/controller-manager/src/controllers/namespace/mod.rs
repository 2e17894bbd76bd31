//! Namespace controller (Kubernetes' `namespace-controller`): a deleted namespace (the apiserver
//! marks it Terminating and keeps it while `spec.finalizers` holds `kubernetes`) is emptied of
//! every namespaced kind, its status conditions report what is left, and once nothing is left the
//! `kubernetes` finalizer is removed through `namespaces/{name}/finalize`, which lets it go.
//!
//! Deletions run [`DELETE_PARALLELISM`] at a time with Background propagation (the garbage
//! collector follows owner references); objects that linger (pods in their grace period, objects
//! with finalizers) are listed again after a short wait. Decisions in [`core`].

pub mod core;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus};
use niwa_client::runtime::watcher;
use niwa_client::{Action, Controller, DeleteParams, ListParams, Propagation, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// Deletes in flight per namespace.
pub const DELETE_PARALLELISM: usize = 16;
/// How soon a namespace whose content lingers is looked at again.
const RECHECK: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
    #[error("encoding the namespace: {0}")]
    Encode(#[from] serde_json::Error),
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(
        shared.client.cluster::<Namespace>(),
        watcher::Config::default(),
    );
    let workers = shared.concurrency.namespace;
    controller
        .run(
            reconcile,
            |_, _: &NamespaceError, _| Action::requeue_with_backoff(),
            shared,
            workers,
            shutdown,
        )
        .await;
}

async fn reconcile(ns: Arc<Namespace>, shared: Arc<Shared>) -> Result<Action, NamespaceError> {
    if !core::needs_finalizing(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    // Two rounds: delete what is there, then look again (most content goes at once).
    let mut remaining = delete_content(&shared, &name).await;
    if !remaining.resources.is_empty() {
        remaining = delete_content(&shared, &name).await;
    }
    let now = shared.clock.now();
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let new = core::conditions(&remaining, now);
    if !core::same_conditions(&old, &new) {
        let mut updated = (*ns).clone();
        let status = updated.status.get_or_insert_with(NamespaceStatus::default);
        status.conditions = Some(core::merge_conditions(&old, new));
        match shared
            .client
            .cluster::<Namespace>()
            .replace_status(&updated)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(Action::await_change()),
            // A concurrent write: the next pass writes the conditions.
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !remaining.is_empty() {
        return Ok(Action::requeue(RECHECK));
    }
    // Empty: remove our finalizer (on the freshest copy, so a conflict cannot lose a change).
    let api = shared.client.dynamic("", "v1", "namespaces", None);
    let Some(fresh) = shared.client.cluster::<Namespace>().get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let body = serde_json::to_value(core::finalized(&fresh))?;
    match api.replace_subresource(&name, "finalize", &body).await {
        Ok(_) => {
            tracing::info!(namespace = %name, "namespace emptied and finalized");
            Ok(Action::await_change())
        }
        Err(e) if e.is_not_found() => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// One pass over every namespaced kind: list, delete what is not already being deleted, count
/// what was there.
async fn delete_content(shared: &Shared, namespace: &str) -> core::Remaining {
    let mut remaining = core::Remaining::default();
    for info in core::deletable(niwa_api::registry::RESOURCES) {
        let api = shared.client.dynamic_for(info, Some(namespace));
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                remaining
                    .failures
                    .insert(core::resource_name(info), e.to_string());
                continue;
            }
        };
        let found: Vec<core::Found> = list
            .iter()
            .map(|o| core::Found {
                name: o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                deleting: !o["metadata"]["deletionTimestamp"].is_null(),
                finalizers: o["metadata"]["finalizers"]
                    .as_array()
                    .map(|f| {
                        f.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let to_delete = remaining.add(info, &found);
        let dp = DeleteParams::default().propagation(Propagation::Background);
        let errors: Vec<String> = stream::iter(to_delete)
            .map(|n| {
                let (api, dp) = (api.clone(), dp.clone());
                async move {
                    api.delete(&n, &dp)
                        .await
                        .err()
                        .filter(|e| !e.is_not_found())
                }
            })
            .buffer_unordered(DELETE_PARALLELISM)
            .filter_map(|e| async move { e.map(|e| e.to_string()) })
            .collect()
            .await;
        if let Some(first) = errors.first() {
            remaining
                .failures
                .insert(core::resource_name(info), first.clone());
        }
    }
    remaining
}
