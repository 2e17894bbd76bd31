//! What the runtime and the prober report: [`PodMachine::handle`] applies an [`Event`] to the
//! machine's state (sandbox, container instances, probe verdicts) and starts stops it calls for.

use super::*;

impl PodMachine {
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

    pub(super) fn on_probed(
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
    pub(super) fn begin_stop(
        &mut self,
        i: usize,
        cause: StopCause,
        grace: Duration,
        now: Timestamp,
    ) {
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
}
