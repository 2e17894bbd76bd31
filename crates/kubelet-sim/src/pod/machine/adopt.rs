//! A kubelet restart: [`PodMachine::adopt`] rebuilds a pod's state from the containers the runtime
//! still runs and the last status the kubelet wrote.

use super::*;

impl PodMachine {
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
