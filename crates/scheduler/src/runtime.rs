//! The IO shell: informers fill the cache and the queue; one scheduling thread pops pods and
//! runs the IO-free [`Algorithm`] on an incrementally updated snapshot; placements are assumed in
//! the cache at once and bound asynchronously (`pods/binding`), so scheduling never waits for the
//! apiserver. Failures set PodScheduled=False/Unschedulable and record a FailedScheduling Event;
//! a failed bind forgets the assumption and requeues the pod. With leader election only the
//! leader schedules; standbys keep their caches warm.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use niwa_client::events::{EventType, Recorder};
use niwa_client::{Api, Client, DeleteParams, LeaderConfig, LeaderElector, Patch, ResourceExt};
use parking_lot::{Condvar, Mutex};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::framework::{Algorithm, AlgorithmConfig, ScheduleError};
use crate::informers::{self, INFORMERS, ObjectIndex};
use crate::metrics::{self, Metrics};
use crate::pod_info::PodInfo;
use crate::preemption::{Candidate, Outcome};
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::snapshot::Snapshot;

/// Everything `run` needs; `main.rs` fills it from flags.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// `http://127.0.0.1:6443`.
    pub apiserver: String,
    /// Pods whose `spec.schedulerName` is this are ours; also the Events' source.
    pub scheduler_name: String,
    pub leader_elect: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub algorithm: AlgorithmConfig,
    /// `/healthz`, `/readyz`, `/livez`, `/metrics`; `None`: not served.
    pub health_listen: Option<SocketAddr>,
    /// Bound on concurrent API calls (bindings, status updates, events) in flight.
    pub max_in_flight: usize,
}

impl SchedulerConfig {
    pub fn new(apiserver: &str) -> SchedulerConfig {
        SchedulerConfig {
            apiserver: apiserver.to_string(),
            scheduler_name: "default-scheduler".into(),
            leader_elect: false,
            lease_namespace: "kube-system".into(),
            lease_name: "kube-scheduler".into(),
            identity: default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            algorithm: AlgorithmConfig::default(),
            health_listen: None,
            max_in_flight: 256,
        }
    }
}

/// `<hostname>_<random>`, as kube-scheduler names its lease holder.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "niwa".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach the apiserver: {0}")]
    Connect(#[from] niwa_client::Error),
    #[error("cannot serve health and metrics on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Leader(#[from] niwa_client::leader::LeaderError),
}

/// State shared by the informers, the scheduling thread and the binders.
#[derive(Debug)]
pub(crate) struct State {
    pub cache: Cache,
    pub queue: SchedulingQueue,
    pub objects: ObjectIndex,
    pub scheduler_name: String,
    pub leading: bool,
    pub synced: bool,
    pub stopped: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Signalled on every change that could let the scheduling thread make progress.
    pub wake: Condvar,
}

struct Ctx {
    shared: Arc<Shared>,
    client: Client,
    pods: Api<Pod>,
    recorder: Recorder,
    metrics: Metrics,
    permits: Semaphore,
    rt: tokio::runtime::Handle,
    profile: String,
}

/// Runs the scheduler until `shutdown`.
pub async fn run(config: SchedulerConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    run_with_metrics(config, shutdown, Metrics::new()).await
}

/// [`run`] with a caller-provided metrics registry (benchmarks read it).
pub async fn run_with_metrics(
    config: SchedulerConfig,
    shutdown: CancellationToken,
    metrics: Metrics,
) -> Result<(), RunError> {
    let client = Client::connect(&config.apiserver).await?;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            cache: Cache::new(),
            queue: SchedulingQueue::new(),
            objects: ObjectIndex::default(),
            scheduler_name: config.scheduler_name.clone(),
            leading: false,
            synced: false,
            stopped: false,
        }),
        wake: Condvar::new(),
    });
    let mut tasks = JoinSet::new();
    if let Some(addr) = config.health_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })?;
        let router = metrics::router(metrics.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "health server failed");
            }
        });
    }
    let synced = Arc::new(AtomicUsize::new(0));
    informers::spawn_all(&mut tasks, &client, &shared, &shutdown, &synced);
    {
        let (shared, metrics, stop) = (shared.clone(), metrics.clone(), shutdown.clone());
        tasks.spawn(async move {
            while synced.load(Ordering::SeqCst) < INFORMERS {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
            shared.state.lock().synced = true;
            shared.wake.notify_all();
            metrics.ready.store(true, Ordering::SeqCst);
            tracing::info!("caches synced");
        });
    }
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        client: client.clone(),
        pods: client.all::<Pod>(),
        recorder: Recorder::new(client.clone(), &config.scheduler_name, None),
        metrics: metrics.clone(),
        permits: Semaphore::new(config.max_in_flight.max(1)),
        rt: tokio::runtime::Handle::current(),
        profile: config.scheduler_name.clone(),
    });
    // If this future is dropped (the task aborted) the scheduling thread must stop too.
    let _stop_guard = StopGuard(shared.clone());
    let algorithm = Algorithm::new(config.algorithm.clone());
    let thread_ctx = ctx.clone();
    let thread = std::thread::Builder::new()
        .name("scheduling".into())
        .spawn(move || scheduling_loop(thread_ctx, algorithm))
        .map_err(|source| RunError::Listen {
            addr: ([0, 0, 0, 0], 0).into(),
            source,
        })?;

    let set_leading = |shared: &Shared, metrics: &Metrics, leading: bool| {
        shared.state.lock().leading = leading;
        shared.wake.notify_all();
        metrics.leader.set(i64::from(leading));
    };
    if config.leader_elect {
        let mut lc = LeaderConfig::new(
            &config.lease_namespace,
            &config.lease_name,
            &config.identity,
        );
        lc.lease_duration = config.lease_duration;
        lc.renew_deadline = config.renew_deadline;
        lc.retry_period = config.retry_period;
        let elector = LeaderElector::new(client.clone(), lc);
        let (s, m) = (shared.clone(), metrics.clone());
        let result = elector
            .run(shutdown.clone(), move |leading: CancellationToken| {
                let (s, m) = (s.clone(), m.clone());
                async move {
                    set_leading(&s, &m, true);
                    leading.cancelled().await;
                    set_leading(&s, &m, false);
                }
            })
            .await;
        set_leading(&shared, &metrics, false);
        if let Err(e) = result {
            stop_thread(&shared, thread).await;
            return Err(e.into());
        }
    } else {
        set_leading(&shared, &metrics, true);
        shutdown.cancelled().await;
    }
    shutdown.cancel();
    stop_thread(&shared, thread).await;
    while tasks.join_next().await.is_some() {}
    Ok(())
}

struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.state.lock().stopped = true;
        self.0.wake.notify_all();
    }
}

async fn stop_thread(shared: &Arc<Shared>, thread: std::thread::JoinHandle<()>) {
    shared.state.lock().stopped = true;
    shared.wake.notify_all();
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

/// How often parked pods older than 5 minutes are flushed, and gauges refreshed.
const FLUSH_EVERY: Duration = Duration::from_secs(30);
const GAUGES_EVERY: Duration = Duration::from_millis(200);

fn scheduling_loop(ctx: Arc<Ctx>, mut alg: Algorithm) {
    let mut snap = Snapshot::default();
    let mut last_flush = Instant::now();
    let mut last_gauges = Instant::now();
    loop {
        let qp = {
            let mut st = ctx.shared.state.lock();
            loop {
                if st.stopped {
                    return;
                }
                let now = Instant::now();
                if now.duration_since(last_flush) >= FLUSH_EVERY {
                    st.queue.flush_unschedulable_leftover(now);
                    last_flush = now;
                }
                if now.duration_since(last_gauges) >= GAUGES_EVERY {
                    let (a, b, u) = st.queue.pending();
                    ctx.metrics.set_pending(a, b, u);
                    last_gauges = now;
                }
                if st.leading
                    && st.synced
                    && let Some(qp) = st.queue.pop(now)
                {
                    break qp;
                }
                let wait = st
                    .queue
                    .next_backoff_expiry()
                    .map(|t| t.saturating_duration_since(now))
                    .unwrap_or(GAUGES_EVERY)
                    .clamp(Duration::from_millis(1), GAUGES_EVERY);
                ctx.shared.wake.wait_for(&mut st, wait);
            }
        };
        schedule_one(&ctx, &mut alg, &mut snap, qp);
    }
}

fn schedule_one(ctx: &Arc<Ctx>, alg: &mut Algorithm, snap: &mut Snapshot, qp: QueuedPod) {
    let start = Instant::now();
    let uid = qp.info.uid.clone();
    {
        let mut st = ctx.shared.state.lock();
        if st.cache.pod(&uid).is_some() {
            st.queue.done(&uid); // bound meanwhile (or already assumed)
            return;
        }
        st.cache.update_snapshot(snap);
    }
    match alg.schedule(&qp.info, snap) {
        Ok(result) => {
            {
                // The cache keeps the node beside the pod, so the queue's PodInfo is shared, not
                // copied with `node_name` set (kube's assumed copy only sets spec.nodeName).
                let mut st = ctx.shared.state.lock();
                if let Err(e) = st.cache.assume(qp.info.clone(), &result.node) {
                    tracing::warn!(pod = %qp.info.key(), error = %e, "cannot assume");
                    st.queue.error(&uid, Instant::now());
                    return;
                }
            }
            tracing::debug!(pod = %qp.info.key(), node = %result.node, evaluated = result.evaluated_nodes,
                feasible = result.feasible_nodes, "scheduled");
            let ctx2 = ctx.clone();
            ctx.rt
                .spawn(async move { bind(ctx2, qp, result.node, start).await });
        }
        Err(err) => {
            let result = match err {
                ScheduleError::NoNodes | ScheduleError::Unschedulable(_) => "unschedulable",
            };
            ctx.metrics
                .attempt(result, &ctx.profile, start.elapsed().as_secs_f64());
            let plugins = match &err {
                ScheduleError::Unschedulable(fit) => fit.rejecting_plugins(),
                ScheduleError::NoNodes => Default::default(),
            };
            ctx.shared
                .state
                .lock()
                .queue
                .unschedulable(&uid, plugins, Instant::now());
            tracing::debug!(pod = %qp.info.key(), reason = %err, "unschedulable");
            let ctx2 = ctx.clone();
            ctx.rt
                .spawn(async move { report_failure(ctx2, qp.info, err).await });
        }
    }
}

async fn bind(ctx: Arc<Ctx>, qp: QueuedPod, node: String, start: Instant) {
    let Ok(_permit) = ctx.permits.acquire().await else {
        return;
    };
    let info = &qp.info;
    // PreBind: the pod's volume claims (selected node, wait until bound).
    if let Err(msg) = crate::volume_binding::pre_bind(&ctx.client, &info.pod, &node).await {
        ctx.metrics
            .attempt("error", &ctx.profile, start.elapsed().as_secs_f64());
        tracing::info!(pod = %info.key(), node = %node, error = %msg, "volume binding failed; requeueing");
        {
            let mut st = ctx.shared.state.lock();
            let _ = st.cache.forget(&info.uid);
            st.queue.error(&info.uid, Instant::now());
        }
        ctx.shared.wake.notify_all();
        let msg = format!("running PreBind plugin \"VolumeBinding\": {msg}");
        publish(
            &ctx,
            &info.pod,
            EventType::Warning,
            "FailedScheduling",
            &msg,
        )
        .await;
        return;
    }
    let api = ctx.pods.in_namespace(&info.namespace);
    match api.bind(&info.name, &node).await {
        Ok(()) => {
            ctx.metrics
                .attempt("scheduled", &ctx.profile, start.elapsed().as_secs_f64());
            ctx.metrics
                .e2e_duration
                .observe(qp.initial.elapsed().as_secs_f64());
            ctx.shared.state.lock().queue.done(&info.uid);
            let msg = format!(
                "Successfully assigned {}/{} to {node}",
                info.namespace, info.name
            );
            publish(&ctx, &info.pod, EventType::Normal, "Scheduled", &msg).await;
        }
        Err(e) => {
            ctx.metrics
                .attempt("error", &ctx.profile, start.elapsed().as_secs_f64());
            tracing::info!(pod = %info.key(), node = %node, error = %e, "binding failed; requeueing");
            {
                let mut st = ctx.shared.state.lock();
                let _ = st.cache.forget(&info.uid);
                if e.is_not_found() {
                    st.queue.delete(&info.uid);
                } else {
                    st.queue.error(&info.uid, Instant::now());
                }
            }
            ctx.shared.wake.notify_all();
            if !e.is_not_found() {
                let msg = format!("Binding rejected: {e}");
                publish(
                    &ctx,
                    &info.pod,
                    EventType::Warning,
                    "FailedScheduling",
                    &msg,
                )
                .await;
            }
        }
    }
}

async fn publish(ctx: &Ctx, pod: &Pod, kind: EventType, reason: &str, msg: &str) {
    if let Err(e) = ctx
        .recorder
        .publish(&pod.object_reference(), kind, reason, msg)
        .await
    {
        tracing::debug!(error = %e, reason, "cannot record event");
    }
}

/// PodScheduled=False/Unschedulable (when it changed), nominatedNodeName after a preemption, and a
/// FailedScheduling Event.
async fn report_failure(ctx: Arc<Ctx>, info: Arc<PodInfo>, err: ScheduleError) {
    let Ok(_permit) = ctx.permits.acquire().await else {
        return;
    };
    let message = err.to_string();
    let mut nominated = None;
    if let ScheduleError::Unschedulable(fit) = &err
        && let Outcome::Candidates(candidates) = &fit.preemption
        && let Some(best) = candidates.first()
    {
        preempt(&ctx, &info, best).await;
        nominated = Some(best.node.clone());
    }
    let status = info.pod.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let old = conditions.iter().position(|c| c.type_ == "PodScheduled");
    let unchanged = old.is_some_and(|i| {
        let c = &conditions[i];
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(&message)
    });
    let nominated_unchanged = nominated.is_none() || status.nominated_node_name == nominated;
    if !unchanged || !nominated_unchanged {
        let now = jiff::Timestamp::now();
        let transition = match old.map(|i| &conditions[i]) {
            Some(c) if c.status == "False" => c.last_transition_time.clone(),
            _ => None,
        }
        .unwrap_or(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        let cond = k8s_openapi::api::core::v1::PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.clone()),
            last_transition_time: Some(transition),
            ..Default::default()
        };
        match old {
            Some(i) => conditions[i] = cond,
            None => conditions.push(cond),
        }
        let mut patch = json!({"status": {"conditions": conditions}});
        if let Some(n) = &nominated {
            patch["status"]["nominatedNodeName"] = json!(n);
        }
        let api = ctx.pods.in_namespace(&info.namespace);
        if let Err(e) = api.patch_status(&info.name, &Patch::Merge(patch)).await
            && !e.is_not_found()
        {
            tracing::info!(pod = %info.key(), error = %e, "cannot update the PodScheduled condition");
        }
    }
    publish(
        &ctx,
        &info.pod,
        EventType::Warning,
        "FailedScheduling",
        &message,
    )
    .await;
}

/// Evicts the victims (DisruptionTarget condition, then delete), as DefaultPreemption does.
async fn preempt(ctx: &Ctx, preemptor: &PodInfo, c: &Candidate) {
    for v in &c.victims {
        ctx.metrics.preemption_victims.inc();
        let api = ctx.pods.in_namespace(&v.namespace);
        let cond = json!({"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
            "message": format!("{}: preempting to accommodate a higher priority pod", ctx.profile),
            "lastTransitionTime": jiff::Timestamp::now().to_string(),
        }]}});
        let _ = api.patch_status(&v.name, &Patch::Merge(cond)).await;
        match api
            .delete(&v.name, &DeleteParams::default().precondition_uid(&v.uid))
            .await
        {
            Ok(_) => {
                let msg = format!("Preempted by pod {} on node {}", preemptor.uid, c.node);
                publish(ctx, &v.pod, EventType::Normal, "Preempted", &msg).await;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::info!(victim = %v.key(), error = %e, "cannot preempt"),
        }
    }
}
