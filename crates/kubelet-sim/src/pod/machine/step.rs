//! The decisions: [`PodMachine::step`] turns the state into [`Action`]s at a given time (start the
//! next init or app container, restart behind CrashLoopBackOff, escalate stops from SIGTERM to
//! SIGKILL, run due probes) and [`PodMachine::next_wake`] says when to decide again.

use super::*;

impl PodMachine {
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

    pub(super) fn should_restart(&self, c: &ContainerRecord, exit_code: i32) -> bool {
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

    pub(super) fn step_running(&mut self, now: Timestamp) {
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
    pub(super) fn keep_running(&mut self, i: usize, now: Timestamp) {
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
    pub(super) fn step_stopping(&mut self, now: Timestamp) {
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
    pub(super) fn step_stops(&mut self, now: Timestamp) {
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

    pub(super) fn step_probes(&mut self, now: Timestamp) {
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
}
