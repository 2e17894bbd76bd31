//! The pod state machine: one pod on one node, from sandbox creation to the removal of the API
//! object, without IO. The node's shell feeds it [`Event`]s from the runtime and spec updates from
//! the apiserver, calls [`PodMachine::step`] with the current time, and carries out the returned
//! [`Action`]s; [`PodMachine::next_wake`] says when to call `step` again if nothing happens.
//! [`super::status`] turns the machine's state into the pod's `status` as Kubernetes reports it.
//!
//! The rules are the kubelet's (`kuberuntime_manager.go` `computePodActions`, `pod_workers.go`):
//! init containers run one at a time in order (sidecars — init containers with `restartPolicy:
//! Always` — stay running), then all app containers start; exited containers restart per the pod's
//! `restartPolicy` behind a CrashLoopBackOff; failing liveness/startup probes kill the container;
//! deletion runs preStop hooks, sends SIGTERM, and SIGKILL when the grace period is over (never less
//! than 2 s), app containers first and sidecars after them in reverse order; then the sandbox goes
//! and the object is removed.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::backoff::BackoffPolicy;
use super::container::{
    ContainerKind, ContainerRecord, ContainerSpec, Instance, Running, StopCause, StopStage,
    Stopping, Terminated,
};
use super::probe::{ProbeKind, Verdict};
use crate::time::{Timestamp, after, elapsed, go_duration, secs};

/// Settings of the state machine (shared by every pod of a node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineConfig {
    /// CrashLoopBackOff (Kubernetes: 10 s doubling to 5 min; forgotten after 10 min of running).
    pub restart_backoff: BackoffPolicy,
    /// ImagePullBackOff (same limits as the kubelet's image back-off).
    pub pull_backoff: BackoffPolicy,
    /// How soon a failed sync (a missing ConfigMap, a failed image pull, a sandbox error) is
    /// retried. The kubelet re-queues a pod worker after an error with about 10 s; niwa uses 5 s.
    pub error_resync: Duration,
    /// The least time between SIGTERM and SIGKILL (the kubelet's `minimumGracePeriodInSeconds`).
    pub min_grace: Duration,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            restart_backoff: BackoffPolicy::default(),
            pull_backoff: BackoffPolicy::default(),
            error_resync: Duration::from_secs(5),
            min_grace: Duration::from_secs(2),
        }
    }
}

/// `spec.restartPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(s: Option<&str>) -> RestartPolicy {
        match s {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "Always",
            RestartPolicy::OnFailure => "OnFailure",
            RestartPolicy::Never => "Never",
        }
    }
}

/// Which pod this is, for messages (`pod=name_namespace(uid)`, as the kubelet's `format.Pod`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodIdentity {
    pub fn of(pod: &Pod) -> PodIdentity {
        PodIdentity {
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }

    pub fn format(&self) -> String {
        format!("{}_{}({})", self.name, self.namespace, self.uid)
    }
}

/// The pod's sandbox: its network identity (the pod IP) and shared resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sandbox {
    NotCreated,
    Creating,
    Ready,
    Failed {
        message: String,
        retry_at: Timestamp,
    },
    Killing,
    Killed,
}

/// Why a container could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The image cannot be had (`ErrImagePull`, then `ImagePullBackOff`).
    ImagePull(String),
    /// The container's configuration cannot be built: a missing ConfigMap, Secret or key
    /// (`CreateContainerConfigError`).
    Config(String),
    /// The process could not be started, e.g. its executable does not exist
    /// (`RunContainerError`; recorded as a terminated instance with reason `StartError`, exit 128).
    Run(String),
}

/// What the runtime reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    SandboxReady {
        pod_ip: Option<String>,
    },
    /// `reason` is the Event reason (`FailedCreatePodSandBox`, `FailedMount`).
    SandboxFailed {
        reason: &'static str,
        message: String,
    },
    SandboxKilled,
    Started {
        container: String,
        container_id: String,
        image_id: String,
        at: Timestamp,
    },
    StartFailed {
        container: String,
        error: StartError,
    },
    Exited {
        container: String,
        container_id: String,
        exit_code: i32,
        /// `OOMKilled` when the runtime knows; else `Completed`/`Error` by exit code.
        reason: Option<String>,
        message: Option<String>,
        signal: Option<i32>,
        at: Timestamp,
    },
    Probed {
        container: String,
        container_id: String,
        kind: ProbeKind,
        success: bool,
        message: String,
    },
    PreStopDone {
        container: String,
        container_id: String,
    },
}

/// A signal for a container's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// `Normal` or `Warning`, as a core/v1 Event's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    CreateSandbox,
    /// Start a new instance of a container (the runtime answers `Started` or `StartFailed`).
    StartContainer {
        container: String,
    },
    /// Run a probe against the running instance (answered by `Probed`).
    Probe {
        container: String,
        container_id: String,
        kind: ProbeKind,
    },
    /// Run the preStop hook, for at most `timeout` (answered by `PreStopDone`).
    PreStop {
        container: String,
        container_id: String,
        timeout: Duration,
    },
    /// Signal the instance's processes (an exit is answered by `Exited`).
    Signal {
        container: String,
        container_id: String,
        signal: Signal,
    },
    /// Tear down the sandbox (answered by `SandboxKilled`).
    KillSandbox,
    /// Everything has stopped: delete the pod object (grace period 0, UID precondition).
    RemovePod,
    /// Publish a core/v1 Event about the pod (or one of its containers).
    Record {
        type_: EventType,
        reason: &'static str,
        message: String,
        container: Option<String>,
    },
}

/// Why the pod stops running containers for good (without being deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// Every container finished and the restart policy restarts none of them (or an init container
    /// failed under `restartPolicy: Never`).
    Completed,
    /// `spec.activeDeadlineSeconds` passed.
    DeadlineExceeded,
}

/// One pod's state machine. Fields are public for [`super::status`] and tests; change them only
/// through the methods.
#[derive(Clone, Debug)]
pub struct PodMachine {
    pub id: PodIdentity,
    pub restart_policy: RestartPolicy,
    pub containers: Vec<ContainerRecord>,
    pub sandbox: Sandbox,
    pub pod_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    pub readiness_gates: Vec<String>,
    /// Every regular init container has succeeded once (the pod is `Initialized`).
    pub initialized: bool,
    pub terminal: Option<Terminal>,
    /// When the pod is being deleted: the end of its grace period.
    pub deletion_deadline: Option<Timestamp>,
    /// The API object is gone (or its removal was asked for): nothing left to delete.
    pub removed: bool,
    pod_grace: Duration,
    active_deadline: Option<Duration>,
    config: MachineConfig,
    pending: Vec<Action>,
}

fn pod_grace_of(pod: &Pod) -> Duration {
    secs(
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30),
    )
}

impl PodMachine {
    pub fn new(pod: &Pod, config: MachineConfig) -> PodMachine {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut containers = Vec::new();
        for c in spec.init_containers.iter().flatten() {
            containers.push(ContainerRecord::new(ContainerSpec::of(
                c,
                ContainerKind::Init,
            )));
        }
        for c in &spec.containers {
            containers.push(ContainerRecord::new(ContainerSpec::of(
                c,
                ContainerKind::App,
            )));
        }
        let initialized = !containers
            .iter()
            .any(|c: &ContainerRecord| c.spec.kind != ContainerKind::App);
        PodMachine {
            id: PodIdentity::of(pod),
            restart_policy: RestartPolicy::of(spec.restart_policy.as_deref()),
            containers,
            sandbox: Sandbox::NotCreated,
            pod_ip: None,
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0),
            readiness_gates: spec
                .readiness_gates
                .iter()
                .flatten()
                .map(|g| g.condition_type.clone())
                .collect(),
            initialized,
            terminal: None,
            deletion_deadline: None,
            removed: false,
            pod_grace: pod_grace_of(pod),
            active_deadline: spec.active_deadline_seconds.map(secs),
            config,
            pending: Vec::new(),
        }
    }

    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name() == name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.containers.iter().position(|c| c.name() == name)
    }

    /// The pod is being torn down (deleted, finished, or past its deadline).
    pub fn stopping(&self) -> bool {
        self.deletion_deadline.is_some() || self.terminal.is_some()
    }

    /// No container runs or is starting and the sandbox is gone (or never was).
    pub fn all_stopped(&self) -> bool {
        !self.containers.iter().any(|c| c.active())
            && matches!(
                self.sandbox,
                Sandbox::NotCreated | Sandbox::Killed | Sandbox::Failed { .. }
            )
    }

    /// Nothing more will ever happen: the shell can forget this pod.
    pub fn finished(&self) -> bool {
        self.removed && self.all_stopped()
    }

    fn record(
        &mut self,
        type_: EventType,
        reason: &'static str,
        message: String,
        container: Option<&str>,
    ) {
        self.pending.push(Action::Record {
            type_,
            reason,
            message,
            container: container.map(str::to_string),
        });
    }

    /// A newer version of the pod object: deletion, a shorter grace period, a changed image.
    pub fn update(&mut self, pod: &Pod, now: Timestamp) {
        if let Some(spec) = &pod.spec {
            self.pod_grace = pod_grace_of(pod);
            self.active_deadline = spec.active_deadline_seconds.map(secs);
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
            {
                let image = c.image.clone().unwrap_or_default();
                let Some(i) = self.index(&c.name) else {
                    continue;
                };
                if self.containers[i].spec.image == image {
                    continue;
                }
                self.containers[i].spec.image = image;
                if self.containers[i].running().is_some() && !self.stopping() {
                    let name = self.containers[i].name().to_string();
                    self.record(
                        EventType::Normal,
                        "Killing",
                        format!("Container {name} definition changed, will be restarted"),
                        Some(&name),
                    );
                    self.begin_stop(i, StopCause::SpecChanged, self.pod_grace, now);
                }
            }
        }
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .map(secs)
                .unwrap_or(self.pod_grace);
            self.begin_deletion(grace, now);
        }
    }

    /// The pod object was removed from the apiserver without us (a forced deletion): stop
    /// everything at once (SIGTERM, then SIGKILL after the minimum grace period).
    pub fn object_deleted(&mut self, now: Timestamp) {
        self.removed = true;
        self.begin_deletion(Duration::ZERO, now);
    }

    fn begin_deletion(&mut self, grace: Duration, now: Timestamp) {
        let deadline = after(now, grace);
        match self.deletion_deadline {
            Some(d) if d <= deadline => return,
            Some(_) => {}
            None => {}
        }
        self.deletion_deadline = Some(deadline);
        // A shorter grace period applies to containers already stopping too.
        let min_kill = after(now, self.config.min_grace);
        for c in &mut self.containers {
            if let Some(Stopping {
                stage: StopStage::Term { kill_at },
                ..
            }) = &mut c.stopping
            {
                *kill_at = (*kill_at).min(deadline.max(min_kill));
            }
            if let Some(Stopping {
                stage: StopStage::PreStop { deadline: d },
                ..
            }) = &mut c.stopping
            {
                *d = (*d).min(deadline);
            }
        }
    }

    /// Apply what the runtime reports.
    pub fn handle(&mut self, event: Event, now: Timestamp) {
        match event {
            Event::SandboxReady { pod_ip } => {
                if self.sandbox == Sandbox::Creating {
                    self.sandbox = Sandbox::Ready;
                    self.pod_ip = pod_ip;
                }
            }
            Event::SandboxFailed { reason, message } => {
                self.record(EventType::Warning, reason, message.clone(), None);
                self.sandbox = Sandbox::Failed {
                    message,
                    retry_at: after(now, self.config.error_resync),
                };
            }
            Event::SandboxKilled => self.sandbox = Sandbox::Killed,
            Event::Started {
                container,
                container_id,
                image_id,
                at,
            } => {
                let Some(i) = self.index(&container) else {
                    return;
                };
                let image = self.containers[i].spec.image.clone();
                self.containers[i].on_started(
                    Running {
                        container_id,
                        image_id,
                        started_at: at,
                    },
                    now,
                );
                self.record(
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                    Some(&container),
                );
                self.record(
                    EventType::Normal,
                    "Created",
                    format!("Created container: {container}"),
                    Some(&container),
                );
                self.record(
                    EventType::Normal,
                    "Started",
                    format!("Started container {container}"),
                    Some(&container),
                );
            }
            Event::StartFailed { container, error } => {
                let Some(i) = self.index(&container) else {
                    return;
                };
                let resync = after(now, self.config.error_resync);
                let pull_policy = self.config.pull_backoff;
                let c = &mut self.containers[i];
                c.starting = false;
                c.retry_at = Some(resync);
                let image = c.spec.image.clone();
                match error {
                    StartError::ImagePull(message) => {
                        c.pull_failed = true;
                        c.pull_backoff.next(now, now, &pull_policy);
                        c.waiting = Some(("ErrImagePull".to_string(), Some(message.clone())));
                        self.record(
                            EventType::Warning,
                            "Failed",
                            format!("Failed to pull image \"{image}\": {message}"),
                            Some(&container),
                        );
                        self.record(
                            EventType::Warning,
                            "Failed",
                            "Error: ErrImagePull".into(),
                            Some(&container),
                        );
                    }
                    StartError::Config(message) => {
                        c.waiting = Some((
                            "CreateContainerConfigError".to_string(),
                            Some(message.clone()),
                        ));
                        self.record(
                            EventType::Warning,
                            "Failed",
                            format!("Error: {message}"),
                            Some(&container),
                        );
                    }
                    StartError::Run(message) => {
                        c.on_exited(Terminated {
                            exit_code: 128,
                            reason: "StartError".to_string(),
                            message: Some(message.clone()),
                            signal: None,
                            started_at: None,
                            finished_at: now,
                            container_id: String::new(),
                            image_id: String::new(),
                        });
                        c.waiting = Some(("RunContainerError".to_string(), Some(message.clone())));
                        self.record(
                            EventType::Warning,
                            "Failed",
                            format!("Error: {message}"),
                            Some(&container),
                        );
                    }
                }
            }
            Event::Exited {
                container,
                container_id,
                exit_code,
                reason,
                message,
                signal,
                at,
            } => {
                let Some(i) = self.index(&container) else {
                    return;
                };
                let c = &mut self.containers[i];
                let Some(running) = c
                    .running()
                    .filter(|r| r.container_id == container_id)
                    .cloned()
                else {
                    return;
                };
                c.on_exited(Terminated {
                    exit_code,
                    reason: reason.unwrap_or_else(|| Terminated::reason_for(exit_code).to_string()),
                    message,
                    signal,
                    started_at: Some(running.started_at),
                    finished_at: at,
                    container_id: running.container_id,
                    image_id: running.image_id,
                });
            }
            Event::Probed {
                container,
                container_id,
                kind,
                success,
                message,
            } => {
                self.on_probed(&container, &container_id, kind, success, message, now);
            }
            Event::PreStopDone {
                container,
                container_id,
            } => {
                let Some(i) = self.index(&container) else {
                    return;
                };
                let min_grace = self.config.min_grace;
                let c = &mut self.containers[i];
                if c.running().is_none_or(|r| r.container_id != container_id) {
                    return;
                }
                if let Some(Stopping {
                    stage: stage @ StopStage::PreStop { .. },
                    ..
                }) = &mut c.stopping
                {
                    let StopStage::PreStop { deadline } = *stage else {
                        return;
                    };
                    let remaining = elapsed(deadline, now).max(min_grace);
                    *stage = StopStage::Term {
                        kill_at: after(now, remaining),
                    };
                    self.pending.push(Action::Signal {
                        container,
                        container_id,
                        signal: Signal::Term,
                    });
                }
            }
        }
    }

    fn on_probed(
        &mut self,
        container: &str,
        container_id: &str,
        kind: ProbeKind,
        success: bool,
        message: String,
        now: Timestamp,
    ) {
        let Some(i) = self.index(container) else {
            return;
        };
        let stopping_pod = self.stopping();
        let pod_grace = self.pod_grace;
        let c = &mut self.containers[i];
        let Some(started_at) = c
            .running()
            .filter(|r| r.container_id == container_id)
            .map(|r| r.started_at)
        else {
            return;
        };
        let Some(worker) = c.probe_mut(kind) else {
            return;
        };
        let verdict = worker.record(success);
        if !success {
            let text = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            self.record(
                EventType::Warning,
                "Unhealthy",
                format!("{} probe failed{text}", kind.title()),
                Some(container),
            );
        }
        let c = &mut self.containers[i];
        match verdict {
            Verdict::Unchanged | Verdict::Changed(false) => {}
            Verdict::Changed(true) if kind == ProbeKind::Startup => {
                c.started = true;
                for p in &mut c.probes {
                    if p.kind != ProbeKind::Startup {
                        p.reset(started_at, now);
                    }
                }
            }
            Verdict::Changed(true) => {}
            Verdict::Kill => {
                if stopping_pod || c.stopping.is_some() {
                    return;
                }
                let grace = c.probe_grace(kind, pod_grace);
                self.record(
                    EventType::Normal,
                    "Killing",
                    format!(
                        "Container {container} failed {} probe, will be restarted",
                        kind.lower()
                    ),
                    Some(container),
                );
                self.begin_stop(i, StopCause::ProbeFailed(kind), grace, now);
            }
        }
    }

    /// Start stopping a running container: preStop hook (once per instance), then SIGTERM.
    fn begin_stop(&mut self, i: usize, cause: StopCause, grace: Duration, now: Timestamp) {
        let min_grace = self.config.min_grace;
        let c = &mut self.containers[i];
        if c.stopping.is_some() {
            return;
        }
        let Some(container_id) = c.running().map(|r| r.container_id.clone()) else {
            return;
        };
        let container = c.name().to_string();
        c.force_restart |= cause == StopCause::SpecChanged;
        if c.spec.has_pre_stop && !c.pre_stop_done {
            c.pre_stop_done = true;
            c.stopping = Some(Stopping {
                cause,
                stage: StopStage::PreStop {
                    deadline: after(now, grace),
                },
            });
            self.pending.push(Action::PreStop {
                container: container.clone(),
                container_id,
                timeout: grace,
            });
        } else {
            c.stopping = Some(Stopping {
                cause,
                stage: StopStage::Term {
                    kill_at: after(now, grace.max(min_grace)),
                },
            });
            self.pending.push(Action::Signal {
                container: container.clone(),
                container_id,
                signal: Signal::Term,
            });
        }
        self.record(
            EventType::Normal,
            "Killing",
            format!("Stopping container {container}"),
            Some(&container),
        );
    }

    /// Decide what to do now. Call after every event and update, and at [`Self::next_wake`].
    pub fn step(&mut self, now: Timestamp) -> Vec<Action> {
        if self.start_time.is_none() {
            self.start_time = Some(now);
        }
        if !self.stopping()
            && let (Some(deadline), Some(start)) = (self.active_deadline, self.start_time)
            && now >= after(start, deadline)
        {
            self.terminal = Some(Terminal::DeadlineExceeded);
            self.record(
                EventType::Warning,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline".into(),
                None,
            );
        }
        if !self.stopping() {
            self.step_running(now);
        }
        if self.stopping() {
            self.step_stopping(now);
        }
        self.step_stops(now);
        self.step_probes(now);
        std::mem::take(&mut self.pending)
    }

    fn should_restart(&self, c: &ContainerRecord, exit_code: i32) -> bool {
        if c.force_restart {
            return true;
        }
        match (c.spec.kind, self.restart_policy) {
            (ContainerKind::Sidecar, _) => true,
            (_, RestartPolicy::Never) => false,
            (ContainerKind::Init, _) | (_, RestartPolicy::OnFailure) => exit_code != 0,
            (ContainerKind::App, RestartPolicy::Always) => true,
        }
    }

    fn step_running(&mut self, now: Timestamp) {
        match &self.sandbox {
            Sandbox::NotCreated => {
                self.sandbox = Sandbox::Creating;
                self.pending.push(Action::CreateSandbox);
                return;
            }
            Sandbox::Failed { retry_at, .. } if now >= *retry_at => {
                self.sandbox = Sandbox::Creating;
                self.pending.push(Action::CreateSandbox);
                return;
            }
            Sandbox::Ready => {}
            _ => return,
        }
        // Init containers, in order, until the pod is initialized; sidecars are kept running.
        for i in 0..self.containers.len() {
            let c = &self.containers[i];
            match c.spec.kind {
                ContainerKind::App => break,
                ContainerKind::Sidecar => {
                    self.keep_running(i, now);
                    if !self.initialized && !self.containers[i].started {
                        return;
                    }
                }
                ContainerKind::Init if self.initialized => {}
                ContainerKind::Init => {
                    if c.succeeded() {
                        continue;
                    }
                    if c.active() {
                        return;
                    }
                    if c.terminated().is_some() && self.restart_policy == RestartPolicy::Never {
                        self.terminal = Some(Terminal::Completed);
                        return;
                    }
                    self.keep_running(i, now);
                    return;
                }
            }
        }
        self.initialized = true;
        let mut apps_done = true;
        for i in 0..self.containers.len() {
            if self.containers[i].spec.kind != ContainerKind::App {
                continue;
            }
            self.keep_running(i, now);
            let c = &self.containers[i];
            let done = !c.active()
                && c.stopping.is_none()
                && c.terminated()
                    .is_some_and(|t| !self.should_restart(c, t.exit_code));
            apps_done &= done;
        }
        if apps_done && self.restart_policy != RestartPolicy::Always {
            self.terminal = Some(Terminal::Completed);
        }
    }

    /// Start a container that has not run, or restart one that exited if its policy says so.
    fn keep_running(&mut self, i: usize, now: Timestamp) {
        let c = &self.containers[i];
        if c.active() || c.stopping.is_some() || c.retry_at.is_some_and(|t| now < t) {
            return;
        }
        if let Some(t) = c.terminated() {
            if !self.should_restart(c, t.exit_code) {
                // It stays terminated: show that rather than the last start error.
                self.containers[i].waiting = None;
                return;
            }
            let finished = t.finished_at;
            let policy = self.config.restart_backoff;
            let pod = self.id.format();
            let c = &mut self.containers[i];
            if c.backoff.in_backoff_since(finished, now, &policy) {
                let name = c.name().to_string();
                let message = format!(
                    "back-off {} restarting failed container={name} pod={pod}",
                    go_duration(c.backoff.delay())
                );
                let first = c
                    .waiting
                    .as_ref()
                    .is_none_or(|(r, _)| r != "CrashLoopBackOff");
                c.waiting = Some(("CrashLoopBackOff".to_string(), Some(message)));
                c.retry_at = Some(c.backoff.until(finished));
                if first {
                    self.record(
                        EventType::Warning,
                        "BackOff",
                        format!("Back-off restarting failed container {name} in pod {pod}"),
                        Some(&name),
                    );
                }
                return;
            }
            c.backoff.next(finished, now, &policy);
        }
        let pull_policy = self.config.pull_backoff;
        let c = &mut self.containers[i];
        c.retry_at = None;
        if c.pull_failed && c.pull_backoff.in_backoff_since_update(now, &pull_policy) {
            let image = c.spec.image.clone();
            let name = c.name().to_string();
            let first = c
                .waiting
                .as_ref()
                .is_none_or(|(r, _)| r != "ImagePullBackOff");
            c.waiting = Some((
                "ImagePullBackOff".to_string(),
                Some(format!("Back-off pulling image \"{image}\"")),
            ));
            c.retry_at = c.pull_backoff.until_since_update();
            if first {
                self.record(
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                    Some(&name),
                );
                self.record(
                    EventType::Warning,
                    "Failed",
                    "Error: ImagePullBackOff".into(),
                    Some(&name),
                );
            }
            return;
        }
        c.starting = true;
        self.pending.push(Action::StartContainer {
            container: c.name().to_string(),
        });
    }

    /// Tear down: app and regular init containers in parallel, then sidecars one by one in reverse
    /// order, then the sandbox; then remove the object if the pod is being deleted.
    fn step_stopping(&mut self, now: Timestamp) {
        let grace = match self.deletion_deadline {
            Some(deadline) => elapsed(deadline, now),
            None => self.pod_grace,
        };
        let mut busy = false;
        for i in 0..self.containers.len() {
            if self.containers[i].spec.kind == ContainerKind::Sidecar {
                continue;
            }
            if self.containers[i].running().is_some() {
                self.begin_stop(i, StopCause::PodStopping, grace, now);
            }
            busy |= self.containers[i].active();
        }
        if busy {
            return;
        }
        for i in (0..self.containers.len()).rev() {
            if self.containers[i].spec.kind != ContainerKind::Sidecar {
                continue;
            }
            if self.containers[i].running().is_some() {
                self.begin_stop(i, StopCause::PodStopping, grace, now);
            }
            if self.containers[i].active() {
                return;
            }
        }
        match self.sandbox {
            Sandbox::Ready => {
                self.sandbox = Sandbox::Killing;
                self.pending.push(Action::KillSandbox);
                return;
            }
            Sandbox::NotCreated | Sandbox::Failed { .. } => self.sandbox = Sandbox::Killed,
            Sandbox::Creating | Sandbox::Killing => return,
            Sandbox::Killed => {}
        }
        if self.deletion_deadline.is_some() && !self.removed {
            self.removed = true;
            self.pending.push(Action::RemovePod);
        }
    }

    /// Advance stop sequences: a preStop hook past its deadline → SIGTERM; SIGTERM past the
    /// grace period → SIGKILL.
    fn step_stops(&mut self, now: Timestamp) {
        let min_grace = self.config.min_grace;
        for c in &mut self.containers {
            let Some(container_id) = c.running().map(|r| r.container_id.clone()) else {
                continue;
            };
            let container = c.spec.name.clone();
            let Some(stopping) = &mut c.stopping else {
                continue;
            };
            match stopping.stage {
                StopStage::PreStop { deadline } if now >= deadline => {
                    stopping.stage = StopStage::Term {
                        kill_at: after(now, min_grace),
                    };
                    self.pending.push(Action::Record {
                        type_: EventType::Warning,
                        reason: "FailedPreStopHook",
                        message: format!("PreStopHook failed: hook did not finish within the grace period ({container})"),
                        container: Some(container.clone()),
                    });
                    self.pending.push(Action::Signal {
                        container,
                        container_id,
                        signal: Signal::Term,
                    });
                }
                StopStage::Term { kill_at } if now >= kill_at => {
                    stopping.stage = StopStage::Killed;
                    self.pending.push(Action::Signal {
                        container,
                        container_id,
                        signal: Signal::Kill,
                    });
                }
                _ => {}
            }
        }
    }

    fn step_probes(&mut self, now: Timestamp) {
        let stopping_pod = self.stopping();
        for c in &mut self.containers {
            let Some(container_id) = c.running().map(|r| r.container_id.clone()) else {
                continue;
            };
            let stopping = stopping_pod || c.stopping.is_some();
            for p in &mut c.probes {
                // While stopping only readiness matters (endpoints drain on it).
                if stopping && p.kind != ProbeKind::Readiness {
                    continue;
                }
                if p.due(now) {
                    p.started(now);
                    self.pending.push(Action::Probe {
                        container: c.spec.name.clone(),
                        container_id: container_id.clone(),
                        kind: p.kind,
                    });
                }
            }
        }
    }

    /// When `step` must run again if no event arrives first.
    pub fn next_wake(&self) -> Option<Timestamp> {
        let mut wake: Option<Timestamp> = None;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        let stopping = self.stopping();
        for c in &self.containers {
            consider(c.next_wake(stopping));
        }
        if let Sandbox::Failed { retry_at, .. } = &self.sandbox {
            consider(Some(*retry_at));
        }
        if !self.stopping()
            && let (Some(deadline), Some(start)) = (self.active_deadline, self.start_time)
        {
            consider(Some(after(start, deadline)));
        }
        wake
    }

    /// Rebuild state for a pod this node was already running (the kubelet restarted): the runtime
    /// says which container instances still run; restart counts and last states come from the last
    /// status the kubelet wrote. A container the status showed running that is gone is reported as
    /// Kubernetes does: terminated, exit code 137, reason `ContainerStatusUnknown`.
    pub fn adopt(
        &mut self,
        pod: &Pod,
        pod_ip: Option<String>,
        running: &[(String, Running)],
        exited: &[(String, Terminated)],
        now: Timestamp,
    ) {
        self.sandbox = Sandbox::Ready;
        self.pod_ip = pod_ip;
        let status = pod.status.clone().unwrap_or_default();
        let statuses: Vec<_> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .cloned()
            .collect();
        for c in &mut self.containers {
            let Some(old) = statuses.iter().find(|s| s.name == c.spec.name) else {
                continue;
            };
            let terminated =
                |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| Terminated {
                    exit_code: t.exit_code,
                    reason: t
                        .reason
                        .clone()
                        .unwrap_or_else(|| Terminated::reason_for(t.exit_code).into()),
                    message: t.message.clone(),
                    signal: t.signal,
                    started_at: t.started_at.as_ref().map(|t| t.0),
                    finished_at: t.finished_at.as_ref().map(|t| t.0).unwrap_or(now),
                    container_id: t.container_id.clone().unwrap_or_default(),
                    image_id: old.image_id.clone(),
                };
            let state = old.state.clone().unwrap_or_default();
            let last = old
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(terminated);
            c.restart_count = u32::try_from(old.restart_count).unwrap_or(0);
            if let Some(t) = &state.terminated {
                c.current = Some(Instance::Terminated(terminated(t)));
                c.previous = last;
            } else if let Some((_, t)) = exited.iter().find(|(name, _)| *name == c.spec.name) {
                // It ended while the kubelet was away; the runtime knows how.
                c.current = Some(Instance::Terminated(t.clone()));
                c.previous = last;
            } else if let Some(r) = &state.running
                && !running.iter().any(|(name, _)| *name == c.spec.name)
            {
                c.current = Some(Instance::Terminated(Terminated {
                    exit_code: 137,
                    reason: "ContainerStatusUnknown".to_string(),
                    message: Some(
                        "The container could not be located when the pod was terminated"
                            .to_string(),
                    ),
                    signal: None,
                    started_at: r.started_at.as_ref().map(|t| t.0),
                    finished_at: now,
                    container_id: old.container_id.clone().unwrap_or_default(),
                    image_id: old.image_id.clone(),
                }));
                c.previous = last;
            } else if state.waiting.is_some() {
                // Waiting to restart (CrashLoopBackOff): the last instance is the current one.
                c.current = last.map(Instance::Terminated);
            } else {
                c.previous = last;
            }
            if let Some((_, r)) = running.iter().find(|(name, _)| *name == c.spec.name) {
                let restarts = c.restart_count;
                let previous = c.previous.take();
                c.current = None;
                c.on_started(r.clone(), now);
                c.restart_count = restarts;
                c.previous = previous;
                // A container that had started (and was ready) keeps that until its probes say
                // otherwise; its probes resume now rather than after their initial delay.
                c.started |= old.started == Some(true);
                let started = c.started;
                for p in &mut c.probes {
                    match p.kind {
                        ProbeKind::Startup if started => {
                            p.next_at = None;
                            p.result = true;
                        }
                        ProbeKind::Readiness if started => {
                            p.result = old.ready;
                            p.next_at = Some(now);
                        }
                        ProbeKind::Liveness if started => p.next_at = Some(now),
                        _ => {}
                    }
                }
            }
        }
        self.initialized = !self
            .containers
            .iter()
            .any(|c| c.spec.kind != ContainerKind::App)
            || status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Initialized" && c.status == "True");
    }

    /// A pod that had already finished (Succeeded/Failed) before the kubelet (re)started: keep its
    /// last status, run nothing.
    pub fn adopt_finished(&mut self, pod: &Pod, now: Timestamp) {
        let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        self.adopt(pod, pod_ip, &[], &[], now);
        self.sandbox = Sandbox::Killed;
        self.terminal = Some(Terminal::Completed);
    }
}
