//! The kubelet's status manager: pod status writes and final deletions, coalesced per pod (only
//! the latest status of a pod is ever sent) and sent by a fixed number of workers, retried until
//! the apiserver takes them. The queue holds at most one entry per pod of the node(s), so it is
//! bounded by the number of pods.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use niwa_client::{Api, Client, DeleteParams, Patch};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// One pending write.
#[derive(Clone, Debug)]
struct Write {
    namespace: String,
    name: String,
    uid: String,
    status: Option<PodStatus>,
    /// Delete the object (grace period 0, UID precondition) after writing the status.
    delete: bool,
    attempts: u32,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<String>,
    pending: HashMap<String, Write>,
    in_flight: HashSet<String>,
}

/// Handle to the writer; clones share it.
#[derive(Clone)]
pub struct StatusWriter {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter").finish_non_exhaustive()
    }
}

impl StatusWriter {
    /// Starts `workers` writer tasks (they stop with `shutdown`).
    pub fn start(
        client: &Client,
        workers: usize,
        metrics: Arc<Metrics>,
        tasks: &mut tokio::task::JoinSet<()>,
        shutdown: &CancellationToken,
    ) -> StatusWriter {
        let writer = StatusWriter {
            state: Arc::default(),
            notify: Arc::new(Notify::new()),
        };
        for _ in 0..workers.max(1) {
            let w = writer.clone();
            let pods: Api<Pod> = client.all();
            let shutdown = shutdown.clone();
            let metrics = metrics.clone();
            tasks.spawn(async move { w.work(pods, metrics, shutdown).await });
        }
        writer
    }

    fn submit(&self, write: Write) {
        {
            let mut st = self.state.lock();
            let uid = write.uid.clone();
            match st.pending.get_mut(&uid) {
                Some(old) => {
                    old.delete |= write.delete;
                    if write.status.is_some() {
                        old.status = write.status;
                    }
                }
                None => {
                    st.pending.insert(uid.clone(), write);
                    if !st.in_flight.contains(&uid) {
                        st.queue.push_back(uid);
                    }
                }
            }
        }
        self.notify.notify_one();
    }

    /// Sends `status` as the pod's status (replacing an unsent older one).
    pub fn status(&self, namespace: &str, name: &str, uid: &str, status: PodStatus) {
        self.submit(Write {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            status: Some(status),
            delete: false,
            attempts: 0,
        });
    }

    /// Writes the final status, then deletes the pod object.
    pub fn remove(&self, namespace: &str, name: &str, uid: &str, status: PodStatus) {
        self.submit(Write {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            status: Some(status),
            delete: true,
            attempts: 0,
        });
    }

    /// Writes not yet sent.
    pub fn backlog(&self) -> usize {
        let st = self.state.lock();
        st.pending.len()
    }

    fn take(&self) -> Option<Write> {
        let mut st = self.state.lock();
        while let Some(uid) = st.queue.pop_front() {
            if let Some(w) = st.pending.remove(&uid) {
                st.in_flight.insert(uid);
                return Some(w);
            }
        }
        None
    }

    fn finish(&self, uid: &str, retry: Option<Write>) {
        let mut st = self.state.lock();
        st.in_flight.remove(uid);
        if let Some(mut w) = retry {
            // A newer write supersedes the failed one (but keeps a pending deletion).
            match st.pending.get_mut(uid) {
                Some(newer) => newer.delete |= w.delete,
                None => {
                    w.attempts += 1;
                    st.pending.insert(uid.to_string(), w);
                }
            }
        }
        if st.pending.contains_key(uid) {
            st.queue.push_back(uid.to_string());
            drop(st);
            self.notify.notify_one();
        }
    }

    async fn work(&self, pods: Api<Pod>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        loop {
            let Some(write) = self.take() else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.notify.notified() => continue,
                }
            };
            let uid = write.uid.clone();
            let api = pods.in_namespace(&write.namespace);
            match perform(&api, &write).await {
                Ok(()) => self.finish(&uid, None),
                Err(e) => {
                    metrics.status_write_errors.inc();
                    let delay =
                        Duration::from_millis(100u64.saturating_mul(1 << write.attempts.min(7)));
                    warn!(pod = %write.name, namespace = %write.namespace, error = %e, "pod status write failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    self.finish(&uid, Some(write));
                }
            }
        }
    }
}

/// The status as a merge patch: the pod's UID as a precondition (as the kubelet sends it), and
/// explicit nulls for optional fields the kubelet may have set before and now clears.
fn status_patch(uid: &str, status: &PodStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        for field in ["reason", "message"] {
            obj.entry(field).or_insert(Value::Null);
        }
    }
    json!({"metadata": {"uid": uid}, "status": value})
}

async fn perform(api: &Api<Pod>, w: &Write) -> Result<(), niwa_client::Error> {
    if let Some(status) = &w.status {
        match api
            .patch_status(&w.name, &Patch::Merge(status_patch(&w.uid, status)))
            .await
        {
            Ok(_) => {}
            // Gone, or a different pod by that name now: nothing to write.
            Err(e) if e.is_not_found() || e.is_conflict() => {
                debug!(pod = %w.name, "pod gone before its status was written");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    if w.delete {
        let dp = DeleteParams::default()
            .grace_period(0)
            .precondition_uid(&w.uid);
        match api.delete(&w.name, &dp).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
