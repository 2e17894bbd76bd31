//! ServiceAccount controller (Kubernetes' `serviceaccount-controller`): every active namespace has
//! a ServiceAccount named `default`; one that is deleted is created again. Terminating namespaces
//! are left alone (the apiserver would refuse the create).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Controller, ObjectRef, ResourceExt, Store};
use tokio_util::sync::CancellationToken;

use super::Shared;

/// The ServiceAccounts every namespace gets.
pub const DEFAULT_NAMES: &[&str] = &["default"];

struct Ctx {
    shared: Arc<Shared>,
    accounts: Store<ServiceAccount>,
}

/// The ServiceAccounts `ns` lacks (IO-free: from the cached accounts of the namespace).
pub fn missing(ns: &Namespace, existing: &[&str]) -> Vec<ServiceAccount> {
    if ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
    {
        return Vec::new();
    }
    DEFAULT_NAMES
        .iter()
        .filter(|n| !existing.contains(n))
        .map(|n| ServiceAccount {
            metadata: ObjectMeta {
                name: Some(n.to_string()),
                namespace: ns.metadata.name.clone(),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(
        shared.client.cluster::<Namespace>(),
        watcher::Config::default(),
    )
    .watches(
        shared.client.all::<ServiceAccount>(),
        watcher::Config {
            field_selector: Some("metadata.name=default".into()),
            ..Default::default()
        },
        |sa: &ServiceAccount| {
            sa.namespace()
                .map(|ns| ObjectRef::new(&ns))
                .into_iter()
                .collect()
        },
    );
    let Some(accounts) = controller.store_for::<ServiceAccount>() else {
        return;
    };
    let workers = shared.concurrency.serviceaccount;
    let ctx = Arc::new(Ctx { shared, accounts });
    controller
        .run(
            reconcile,
            |_, _: &niwa_client::Error, _| Action::requeue_with_backoff(),
            ctx,
            workers,
            shutdown,
        )
        .await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, niwa_client::Error> {
    // The ServiceAccount watch may not have listed yet: wait for it rather than create twice.
    ctx.accounts.wait_until_ready().await;
    let name = ns.name_any();
    let here = ctx
        .accounts
        .filter(|sa| sa.metadata.namespace.as_deref() == Some(name.as_str()));
    let names: Vec<&str> = here
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    for sa in missing(&ns, &names) {
        match ctx
            .shared
            .client
            .namespaced::<ServiceAccount>(&name)
            .create(&sa)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            // The namespace started terminating meanwhile.
            Err(e)
                if e.api()
                    .is_some_and(|a| a.reason == niwa_client::Reason::Forbidden) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_account_for_active_namespaces_only() {
        let active: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).expect("ns");
        let got = missing(&active, &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].metadata.name.as_deref(), Some("default"));
        assert_eq!(got[0].metadata.namespace.as_deref(), Some("a"));
        assert!(missing(&active, &["default"]).is_empty());
        let term: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "a",
            "deletionTimestamp": "2027-01-15T08:00:00Z"}}))
        .expect("ns");
        assert!(missing(&term, &[]).is_empty());
    }
}
