//! Job controller: runs pods to completion (completions, parallelism, Indexed mode), retries with
//! exponential backoff up to backoffLimit, activeDeadlineSeconds, podFailurePolicy, suspend.
//! Decisions in [`core`]; [`ttl`] is the TTL-after-finished controller.
//!
//! The shell: a [`niwa_client::Controller`] over Jobs, re-queued by changes of their pods (shared
//! pod informer). A pass runs only once the pods the previous pass created and deleted are visible
//! in the cache (expectations); it then performs [`core::sync`]'s steps in order.

pub mod core;
pub mod ttl;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, Patch, ResourceExt};
use tokio_util::sync::CancellationToken;

use self::core::{Step, TRACKING_FINALIZER};
use super::Shared;
use super::pod_control::{create_pods, delete_pods};
use crate::util::expectations::Expectations;

#[derive(Debug, thiserror::Error)]
pub enum JobControllerError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
    #[error("invalid selector: {0}")]
    Selector(#[from] niwa_api::selector::SelectorError),
}

struct Ctx {
    shared: Arc<Shared>,
    expectations: Expectations,
    /// Per Job key: UIDs of finished pods whose tracking finalizer this controller removed (so
    /// they are counted in the Job's status) but whose update the cache has not shown yet. A
    /// stale copy still carrying the finalizer would otherwise be counted a second time — what
    /// Kubernetes' finalizer expectations prevent.
    finalizers_removed: std::sync::Mutex<HashMap<String, HashSet<String>>>,
}

impl Ctx {
    /// Drops from `pods` the stale copies of pods whose finalizer removal is not visible yet, and
    /// forgets the removals the cache now shows (pod without the finalizer, or gone).
    fn without_stale<'a>(&self, key: &str, pods: Vec<&'a Pod>) -> Vec<&'a Pod> {
        let mut removed = self
            .finalizers_removed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(pending) = removed.get_mut(key) else {
            return pods;
        };
        let mut still_stale = HashSet::new();
        let kept = pods
            .into_iter()
            .filter(|p| {
                let uid = p.metadata.uid.as_deref().unwrap_or_default();
                let stale = pending.contains(uid) && core::has_finalizer(p);
                if stale {
                    still_stale.insert(uid.to_string());
                }
                !stale
            })
            .collect();
        if still_stale.is_empty() {
            removed.remove(key);
        } else {
            *pending = still_stale;
        }
        kept
    }

    fn record_finalizers_removed(&self, key: &str, uids: impl IntoIterator<Item = String>) {
        let mut removed = self
            .finalizers_removed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        removed.entry(key.to_string()).or_default().extend(uids);
    }
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(shared.client.all::<Job>(), watcher::Config::default());
    let pod_keys = shared
        .pods
        .subscribe()
        .flat_map(|c| stream::iter(super::owner_key(&c, "Job")));
    shared.pods.store().wait_until_ready().await;
    let workers = shared.concurrency.job;
    let ctx = Arc::new(Ctx {
        shared,
        expectations: Expectations::new(),
        finalizers_removed: std::sync::Mutex::new(HashMap::new()),
    });
    controller
        .reconcile_on(pod_keys)
        .run(reconcile, error_policy, ctx, workers, shutdown)
        .await;
}

fn error_policy(job: Arc<Job>, err: &JobControllerError, ctx: Arc<Ctx>) -> Action {
    if let JobControllerError::Selector(e) = err {
        ctx.shared.events.publish(
            job.object_reference(),
            "Warning",
            "InvalidSelector",
            e.to_string(),
        );
        return Action::await_change();
    }
    Action::requeue_with_backoff()
}

/// The merge patch that drops the tracking finalizer from a pod.
fn without_finalizer(pod: &Pod) -> Patch {
    let rest: Vec<String> = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .cloned()
        .collect();
    let value = if rest.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(rest)
    };
    Patch::Merge(serde_json::json!({"metadata": {"finalizers": value}}))
}

async fn remove_finalizers(
    api: &Api<Pod>,
    pods: &BTreeMap<String, &Pod>,
    names: &[String],
) -> Result<(), niwa_client::Error> {
    let patches: Vec<(String, Patch)> = names
        .iter()
        .filter_map(|n| pods.get(n).map(|p| (n.clone(), without_finalizer(p))))
        .collect();
    let results: Vec<Result<(), niwa_client::Error>> = stream::iter(patches)
        .map(|(name, patch)| {
            let api = api.clone();
            async move {
                match api.patch(&name, &patch).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, JobControllerError> {
    let shared = &ctx.shared;
    let ns = job.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", job.name_any());
    if !ctx
        .expectations
        .satisfied(&key, Instant::now(), |n| shared.pod_seen(&ns, n))
    {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let now = shared.clock.now();
    // Validate the selector (a Job's pods are found by their controller reference).
    core::selector(&job)?;
    // Its pods from the owner index (the pods it controls, not every pod of the namespace).
    let all = shared.pods_of(&job.metadata, false);
    let pods: Vec<&Pod> = all.iter().map(|p| p.as_ref()).collect();
    let pods = ctx.without_stale(&key, pods);
    let by_name: BTreeMap<String, &Pod> = pods.iter().map(|p| (p.name_any(), *p)).collect();
    let plan = core::sync(&job, &pods, now);
    let pods_api: Api<Pod> = shared.client.namespaced(&ns);
    let jobs_api: Api<Job> = shared.client.namespaced(&ns);
    let regarding = job.object_reference();
    let mut latest = (*job).clone();
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let mut failure = None;
    for step in plan.steps {
        match step {
            Step::UpdateStatus(st) => {
                latest.status = Some(st);
                match jobs_api.replace_status(&latest).await {
                    Ok(w) => latest.metadata.resource_version = w.metadata.resource_version,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            Step::RemoveFinalizers(names) => {
                if let Err(e) = remove_finalizers(&pods_api, &by_name, &names).await {
                    failure = Some(e);
                    break;
                }
                let uids = names
                    .iter()
                    .filter_map(|n| by_name.get(n)?.metadata.uid.clone());
                ctx.record_finalizers_removed(&key, uids);
            }
            Step::CreatePods(new_pods) => {
                let (names, err) =
                    create_pods(&pods_api, new_pods, &regarding, &shared.events).await;
                created.extend(names);
                if let Some(e) = err {
                    failure = Some(e);
                    break;
                }
            }
            Step::DeletePods(names) => {
                // As Kubernetes: release the finalizer first, so a pod the Job removes itself is
                // not counted as a failure.
                if let Err(e) = remove_finalizers(&pods_api, &by_name, &names).await {
                    failure = Some(e);
                    break;
                }
                let (names, err) = delete_pods(&pods_api, names, &regarding, &shared.events).await;
                deleted.extend(names);
                if let Some(e) = err {
                    failure = Some(e);
                    break;
                }
            }
            Step::Event {
                type_,
                reason,
                message,
            } => shared
                .events
                .publish(regarding.clone(), type_, reason, message),
        }
    }
    ctx.expectations
        .expect(&key, created, deleted, Instant::now());
    if let Some(e) = failure {
        if e.is_not_found() {
            ctx.expectations.forget(&key);
            ctx.finalizers_removed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            return Ok(Action::await_change());
        }
        return Err(e.into());
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}
