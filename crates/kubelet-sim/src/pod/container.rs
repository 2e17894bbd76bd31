//! One container of a pod as the state machine tracks it: what the spec asks for
//! ([`ContainerSpec`]) and what has happened to it ([`ContainerRecord`]: current and previous
//! instance, back-off, probes, termination in progress).

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;

use super::backoff::Backoff;
use super::probe::{ProbeKind, ProbeTiming, ProbeWorker};
use crate::time::Timestamp;

/// Where a container sits in the pod's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// A regular init container: runs to completion, in order, before the next one.
    Init,
    /// An init container with `restartPolicy: Always` (a sidecar): started in init order, kept
    /// running for the pod's life, stopped after the app containers.
    Sidecar,
    /// An app container (`spec.containers`).
    App,
}

/// What the machine needs from a container's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub kind: ContainerKind,
    pub startup: Option<ProbeTiming>,
    pub liveness: Option<ProbeTiming>,
    pub readiness: Option<ProbeTiming>,
    pub has_pre_stop: bool,
}

impl ContainerSpec {
    pub fn of(c: &Container, kind: ContainerKind) -> ContainerSpec {
        let kind = if kind == ContainerKind::Init && c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            kind
        };
        // Regular init containers cannot have probes (validation rejects them); ignore any.
        let probes = kind != ContainerKind::Init;
        ContainerSpec {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            kind,
            startup: c
                .startup_probe
                .as_ref()
                .filter(|_| probes)
                .map(ProbeTiming::of),
            liveness: c
                .liveness_probe
                .as_ref()
                .filter(|_| probes)
                .map(ProbeTiming::of),
            readiness: c
                .readiness_probe
                .as_ref()
                .filter(|_| probes)
                .map(ProbeTiming::of),
            has_pre_stop: c.lifecycle.as_ref().is_some_and(|l| l.pre_stop.is_some()),
        }
    }
}

/// A container instance that ended (the `terminated` state Kubernetes reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, ...
    pub reason: String,
    pub message: Option<String>,
    pub signal: Option<i32>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: String,
    pub image_id: String,
}

impl Terminated {
    /// The reason Kubernetes gives an exit code when the runtime gives none.
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 { "Completed" } else { "Error" }
    }
}

/// A container instance that is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub container_id: String,
    pub image_id: String,
    pub started_at: Timestamp,
}

/// The current (or last) instance of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instance {
    Running(Running),
    Terminated(Terminated),
}

/// Why a container's instance is being stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// The pod is terminating (deleted, finished, or past its active deadline).
    PodStopping,
    /// A liveness or startup probe failed: restart it (if the restart policy allows).
    ProbeFailed(ProbeKind),
    /// Its image changed in the pod spec: restart it with the new image.
    SpecChanged,
}

/// Where the stop sequence is: preStop hook, then SIGTERM, then SIGKILL at the deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopStage {
    /// The preStop hook is running; it may use the grace period until `deadline`.
    PreStop { deadline: Timestamp },
    /// SIGTERM was sent; SIGKILL follows at `kill_at`.
    Term { kill_at: Timestamp },
    /// SIGKILL was sent; waiting for the exit.
    Killed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopping {
    pub cause: StopCause,
    pub stage: StopStage,
}

/// Everything the machine knows about one container.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub spec: ContainerSpec,
    /// The current instance (running, or the last one that ended).
    pub current: Option<Instance>,
    /// The instance before the current one (`lastState`).
    pub previous: Option<Terminated>,
    pub restart_count: u32,
    /// A waiting reason and message shown instead of the current instance's state
    /// (`CrashLoopBackOff`, `ErrImagePull`, `CreateContainerConfigError`, ...).
    pub waiting: Option<(String, Option<String>)>,
    /// A start was asked of the runtime and has not been answered yet.
    pub starting: bool,
    /// Not before this time will the machine try to start it again (back-off, error re-sync).
    pub retry_at: Option<Timestamp>,
    /// The last start failed pulling the image (so the next try checks the pull back-off).
    pub pull_failed: bool,
    pub backoff: Backoff,
    pub pull_backoff: Backoff,
    pub probes: Vec<ProbeWorker>,
    /// `started` as Kubernetes reports it: running and past its startup probe.
    pub started: bool,
    pub stopping: Option<Stopping>,
    /// The preStop hook of the current instance already ran.
    pub pre_stop_done: bool,
    /// Restart the next time it exits whatever the restart policy says (its spec changed).
    pub force_restart: bool,
}

impl ContainerRecord {
    pub fn new(spec: ContainerSpec) -> ContainerRecord {
        let mut probes = Vec::new();
        for (kind, timing) in [
            (ProbeKind::Startup, spec.startup),
            (ProbeKind::Liveness, spec.liveness),
            (ProbeKind::Readiness, spec.readiness),
        ] {
            if let Some(timing) = timing {
                probes.push(ProbeWorker::new(kind, timing));
            }
        }
        ContainerRecord {
            spec,
            current: None,
            previous: None,
            restart_count: 0,
            waiting: None,
            starting: false,
            retry_at: None,
            pull_failed: false,
            backoff: Backoff::default(),
            pull_backoff: Backoff::default(),
            probes,
            started: false,
            stopping: None,
            pre_stop_done: false,
            force_restart: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn running(&self) -> Option<&Running> {
        match &self.current {
            Some(Instance::Running(r)) => Some(r),
            _ => None,
        }
    }

    pub fn terminated(&self) -> Option<&Terminated> {
        match &self.current {
            Some(Instance::Terminated(t)) => Some(t),
            _ => None,
        }
    }

    /// Running, or asked to start: something the runtime may still be doing.
    pub fn active(&self) -> bool {
        self.starting || self.running().is_some()
    }

    /// Ran to completion with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.terminated().is_some_and(|t| t.exit_code == 0)
    }

    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeWorker> {
        self.probes.iter().find(|p| p.kind == kind)
    }

    pub fn probe_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeWorker> {
        self.probes.iter_mut().find(|p| p.kind == kind)
    }

    /// `ready` as Kubernetes reports it: running, started, and its readiness probe (if any) passing.
    pub fn ready(&self) -> bool {
        self.running().is_some()
            && self.started
            && self.probe(ProbeKind::Readiness).is_none_or(|p| p.result)
    }

    /// A new instance started: the current one (if any) becomes the previous one.
    pub fn on_started(&mut self, running: Running, now: Timestamp) {
        if let Some(Instance::Terminated(t)) = self.current.take() {
            self.previous = Some(t);
            self.restart_count = self.restart_count.saturating_add(1);
        }
        let started_at = running.started_at;
        self.current = Some(Instance::Running(running));
        self.starting = false;
        self.waiting = None;
        self.retry_at = None;
        self.pull_failed = false;
        self.stopping = None;
        self.pre_stop_done = false;
        self.force_restart = false;
        self.started = self.spec.startup.is_none();
        for p in &mut self.probes {
            if p.kind == ProbeKind::Startup || self.started {
                p.reset(started_at, now);
            } else {
                // Liveness and readiness wait for the startup probe; their initial delay still
                // counts from the container's start.
                p.reset(started_at, now);
                p.next_at = None;
            }
        }
    }

    /// The current instance ended.
    pub fn on_exited(&mut self, terminated: Terminated) {
        if let Some(Instance::Terminated(t)) = self.current.take() {
            // Two terminations without a start in between (a failed start): keep the older one as
            // the previous instance, as the runtime's container list would.
            self.previous = Some(t);
            self.restart_count = self.restart_count.saturating_add(1);
        }
        self.current = Some(Instance::Terminated(terminated));
        self.starting = false;
        self.started = false;
        self.stopping = None;
        for p in &mut self.probes {
            p.stop();
        }
    }

    /// The earliest time this container needs attention without an event. While it (or its pod)
    /// is stopping only its readiness probe still runs.
    pub fn next_wake(&self, pod_stopping: bool) -> Option<Timestamp> {
        let mut wake = self.retry_at;
        let mut consider = |t: Option<Timestamp>| {
            if let Some(t) = t {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        let stopping = pod_stopping || self.stopping.is_some();
        if self.running().is_some() {
            for p in &self.probes {
                if !stopping || p.kind == ProbeKind::Readiness {
                    consider(p.wake());
                }
            }
        }
        match &self.stopping {
            Some(Stopping {
                stage: StopStage::PreStop { deadline },
                ..
            }) => consider(Some(*deadline)),
            Some(Stopping {
                stage: StopStage::Term { kill_at },
                ..
            }) => consider(Some(*kill_at)),
            _ => {}
        }
        wake
    }

    /// The grace period a probe-triggered kill gets (the probe's own, else the pod's).
    pub fn probe_grace(&self, kind: ProbeKind, pod_grace: Duration) -> Duration {
        self.probe(kind)
            .and_then(|p| p.timing.termination_grace)
            .unwrap_or(pod_grace)
    }
}
