//! Garbage collector (Kubernetes' `garbage-collector-controller`): follows ownerReferences.
//! Dependents whose owners are gone are deleted (Background deletion of an owner), `orphan`
//! deletions release the dependents, `foregroundDeletion` deletions remove the dependents first
//! (honouring `blockOwnerDeletion`) — the apiserver's DELETE only sets those finalizers; this
//! controller finishes the job.
//!
//! The shell: one metadata watch per deletable resource of the registry ([`watch`]) feeds a
//! single graph ([`graph::Graph`], behind a mutex held only for in-memory updates); changed UIDs
//! go to a work queue; workers look up owners missing from the graph with a live GET (an owner
//! may simply not be listed yet — nothing is deleted on the graph's word alone) and perform the
//! decision of [`graph::decide`].

pub mod graph;
pub mod watch;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use niwa_client::{DeleteParams, DynamicApi, ObjectRef, Propagation, WorkQueue};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Shared, keyed};
use graph::{Decision, FOREGROUND, Graph, Node, ORPHAN, OwnerState};
use watch::GraphEvent;

/// Graph events buffered between the watches and the graph.
pub const GRAPH_EVENTS: usize = 10_000;
/// How soon an owner waiting for dependents is looked at again even without news.
const FOREGROUND_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Api(#[from] niwa_client::Error),
}

struct Ctx {
    shared: Arc<Shared>,
    graph: Arc<Mutex<Graph>>,
    queue: WorkQueue<ObjectRef>,
}

fn lock(g: &Mutex<Graph>) -> MutexGuard<'_, Graph> {
    // Every update under the lock is a complete in-memory step: a poisoned lock is consistent.
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// Apply one watch event to the graph; returns the UIDs to look at.
fn apply(graph: &Mutex<Graph>, ev: GraphEvent) -> Vec<String> {
    let mut g = lock(graph);
    match ev {
        GraphEvent::Upsert(info, meta) => match Node::from_meta(info, &meta) {
            Some((uid, node)) => g.upsert(uid, node),
            None => Vec::new(),
        },
        GraphEvent::Delete(_, meta) => meta.uid.map(|u| g.remove(&u)).unwrap_or_default(),
        GraphEvent::Listed(info, metas) => {
            let mut listed = BTreeSet::new();
            let mut out = Vec::new();
            for meta in metas {
                if let Some((uid, node)) = Node::from_meta(info, &meta) {
                    listed.insert(uid.clone());
                    out.extend(g.upsert(uid, node));
                }
            }
            out.extend(g.retain_listed(info, &listed));
            out
        }
    }
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let graph = Arc::new(Mutex::new(Graph::default()));
    let (tx, rx) = mpsc::channel(GRAPH_EVENTS);
    let mut tasks = JoinSet::new();
    for info in watch::watched_resources() {
        tasks.spawn(watch::watch_resource(
            shared.client.clone(),
            info,
            tx.clone(),
            shutdown.clone(),
        ));
    }
    drop(tx);
    let g = graph.clone();
    let mut rx = rx;
    let events = stream::poll_fn(move |cx| rx.poll_recv(cx));
    let triggers = events.flat_map(move |ev| {
        stream::iter(apply(&g, ev).into_iter().map(|uid| ObjectRef::new(&uid)))
    });
    let queue = WorkQueue::new();
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        graph,
        queue: queue.clone(),
    });
    keyed::run(
        "garbage-collector-controller",
        queue,
        triggers,
        shared.concurrency.garbage_collector,
        shutdown,
        move |key| process(key.name, ctx.clone()),
    )
    .await;
    while tasks.join_next().await.is_some() {}
}

fn api_for(shared: &Shared, node: &Node) -> DynamicApi {
    shared
        .client
        .dynamic_for(node.info, node.namespace.as_deref())
}

/// What an owner is, from the graph or — when the graph does not know it — from the apiserver.
async fn owner_state(
    ctx: &Ctx,
    owner: &OwnerReference,
    namespace: Option<&str>,
) -> Result<OwnerState, GcError> {
    let known = lock(&ctx.graph)
        .get(&owner.uid)
        .map(Node::waiting_for_dependents);
    match known {
        Some(true) => return Ok(OwnerState::Waiting),
        Some(false) => return Ok(OwnerState::Solid),
        None => {}
    }
    let Some(info) = niwa_api::Registry.by_kind(&owner.api_version, &owner.kind) else {
        return Ok(OwnerState::Unknown);
    };
    let ns = if info.namespaced {
        match namespace {
            Some(ns) => Some(ns),
            // A cluster-scoped dependent cannot have a namespaced owner: not ours to judge.
            None => return Ok(OwnerState::Unknown),
        }
    } else {
        None
    };
    let live = ctx
        .shared
        .client
        .dynamic_for(info, ns)
        .get_opt(&owner.name)
        .await?;
    Ok(match live {
        Some(o) if o["metadata"]["uid"].as_str() == Some(owner.uid.as_str()) => {
            let deleting = !o["metadata"]["deletionTimestamp"].is_null();
            let foreground = finalizers(&o).iter().any(|f| f == FOREGROUND);
            if deleting && foreground {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            }
        }
        _ => OwnerState::Absent,
    })
}

fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn process(uid: String, ctx: Arc<Ctx>) -> Result<Option<Duration>, GcError> {
    let Some(node) = lock(&ctx.graph).get(&uid).cloned() else {
        return Ok(None);
    };
    let mut states: HashMap<String, OwnerState> = HashMap::new();
    if !node.deleting {
        for o in &node.owners {
            let s = owner_state(&ctx, o, node.namespace.as_deref()).await?;
            states.insert(o.uid.clone(), s);
        }
    }
    let decision = graph::decide(&lock(&ctx.graph), &uid, |o| {
        states.get(&o.uid).copied().unwrap_or(OwnerState::Absent)
    });
    let api = api_for(&ctx.shared, &node);
    match decision {
        Decision::Nothing => Ok(None),
        Decision::Delete(policy) => {
            let propagation = match policy {
                "Foreground" => Propagation::Foreground,
                "Orphan" => Propagation::Orphan,
                _ => Propagation::Background,
            };
            let dp = DeleteParams::default()
                .propagation(propagation)
                .precondition_uid(&uid);
            tracing::debug!(object = %node.name, kind = node.info.kind, policy, "collecting");
            match api.delete(&node.name, &dp).await {
                Ok(_) => Ok(None),
                // Gone already, or replaced by a namesake (the UID precondition).
                Err(e) if e.is_not_found() || e.is_conflict() => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        Decision::FixReferences { remove, unblock } => {
            edit(&api, &node.name, &uid, |o| {
                let refs = o["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let kept: Vec<Value> = refs
                    .into_iter()
                    .filter(|r| !remove.iter().any(|u| r["uid"].as_str() == Some(u)))
                    .map(|mut r| {
                        if unblock.iter().any(|u| r["uid"].as_str() == Some(u)) {
                            r["blockOwnerDeletion"] = Value::Bool(false);
                        }
                        r
                    })
                    .collect();
                o["metadata"]["ownerReferences"] = Value::Array(kept);
            })
            .await?;
            Ok(None)
        }
        Decision::Orphan(dependents) => {
            for d in dependents {
                let Some(dep) = lock(&ctx.graph).get(&d).cloned() else {
                    continue;
                };
                edit(&api_for(&ctx.shared, &dep), &dep.name, &d, |o| {
                    let refs = o["metadata"]["ownerReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let kept: Vec<Value> = refs
                        .into_iter()
                        .filter(|r| r["uid"].as_str() != Some(uid.as_str()))
                        .collect();
                    o["metadata"]["ownerReferences"] = Value::Array(kept);
                })
                .await?;
            }
            remove_finalizer(&api, &node.name, &uid, ORPHAN).await?;
            Ok(None)
        }
        Decision::Foreground {
            dependents,
            finalize,
        } => {
            for d in dependents {
                ctx.queue.add(ObjectRef::new(&d));
            }
            if finalize {
                remove_finalizer(&api, &node.name, &uid, FOREGROUND).await?;
                return Ok(None);
            }
            Ok(Some(FOREGROUND_RECHECK))
        }
    }
}

/// Read-modify-write of one object (conflicts surface as errors and the key is retried).
async fn edit(
    api: &DynamicApi,
    name: &str,
    uid: &str,
    change: impl FnOnce(&mut Value),
) -> Result<(), GcError> {
    let Some(mut obj) = api.get_opt(name).await? else {
        return Ok(());
    };
    if obj["metadata"]["uid"].as_str() != Some(uid) {
        return Ok(());
    }
    change(&mut obj);
    match api.replace(&obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn remove_finalizer(
    api: &DynamicApi,
    name: &str,
    uid: &str,
    finalizer: &str,
) -> Result<(), GcError> {
    edit(api, name, uid, |o| {
        let left: Vec<Value> = finalizers(o)
            .into_iter()
            .filter(|f| f != finalizer)
            .map(Value::String)
            .collect();
        o["metadata"]["finalizers"] = Value::Array(left);
    })
    .await
}
