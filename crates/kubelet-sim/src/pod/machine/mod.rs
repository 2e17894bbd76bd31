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

mod adopt;
mod events;
mod step;

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
}
