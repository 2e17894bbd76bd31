//! [`Runtime`] for [`ProcessRuntime`]: what the node's pod workers call.

use super::launch::Handler;
use super::*;

impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    fn create_sandbox(&self, pod: &PodHandle, ip: Ipv4Addr, sink: &EventSink) -> Vec<Scheduled> {
        let this = self.clone();
        let pod = pod.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            let event = match this.setup_sandbox(&pod, ip).await {
                Ok(()) => Event::SandboxReady {
                    pod_ip: Some(ip.to_string()),
                },
                Err((reason, message)) => Event::SandboxFailed { reason, message },
            };
            sink.send(&pod.uid, event).await;
        });
        Vec::new()
    }

    fn start_container(
        &self,
        pod: &PodHandle,
        container: &str,
        sink: &EventSink,
    ) -> Vec<Scheduled> {
        tokio::spawn(
            self.clone()
                .start(pod.clone(), container.to_string(), sink.clone()),
        );
        Vec::new()
    }

    fn probe(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        kind: ProbeKind,
        sink: &EventSink,
    ) -> Vec<Scheduled> {
        let this = self.clone();
        let pod = pod.clone();
        let sink = sink.clone();
        let (name, id) = (container.to_string(), container_id.to_string());
        tokio::spawn(async move {
            let c = find_container(&pod.pod, &name).cloned().unwrap_or_default();
            let spec = match kind {
                ProbeKind::Startup => c.startup_probe.clone(),
                ProbeKind::Liveness => c.liveness_probe.clone(),
                ProbeKind::Readiness => c.readiness_probe.clone(),
            };
            let outcome = match (spec, this.instance_pid(&pod.uid, &name, &id)) {
                (Some(p), Some(pid)) => {
                    let timeout = crate::pod::probe::ProbeTiming::of(&p).timeout;
                    this.run_handler(&pod, &c, pid, Handler::Probe(&p), timeout)
                        .await
                }
                _ => Err("the container is not running".to_string()),
            };
            let (success, message) = match outcome {
                Ok(()) => (true, String::new()),
                Err(m) => (false, m),
            };
            sink.send(
                &pod.uid,
                Event::Probed {
                    container: name,
                    container_id: id,
                    kind,
                    success,
                    message,
                },
            )
            .await;
        });
        Vec::new()
    }

    fn pre_stop(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        timeout: Duration,
        sink: &EventSink,
    ) -> Vec<Scheduled> {
        let this = self.clone();
        let pod = pod.clone();
        let sink = sink.clone();
        let (name, id) = (container.to_string(), container_id.to_string());
        tokio::spawn(async move {
            let c = find_container(&pod.pod, &name).cloned().unwrap_or_default();
            let hook = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone());
            if let (Some(h), Some(pid)) = (hook, this.instance_pid(&pod.uid, &name, &id))
                && let Err(m) = this
                    .run_handler(&pod, &c, pid, Handler::Lifecycle(&h), timeout)
                    .await
            {
                warn!(pod = pod.name(), container = %name, error = %m, "preStop hook failed");
            }
            sink.send(
                &pod.uid,
                Event::PreStopDone {
                    container: name,
                    container_id: id,
                },
            )
            .await;
        });
        Vec::new()
    }

    fn signal(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        signal: Signal,
        _sink: &EventSink,
    ) -> Vec<Scheduled> {
        if let Some(pid) = self.instance_pid(&pod.uid, container, container_id) {
            let sig = match signal {
                Signal::Term => NixSignal::SIGTERM,
                Signal::Kill => NixSignal::SIGKILL,
            };
            let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
            if let Err(e) = killpg(pid, sig) {
                debug!(container, error = %e, "signal not delivered (already gone?)");
            }
        }
        Vec::new()
    }

    fn kill_sandbox(&self, pod: &PodHandle, _sink: &EventSink) -> Vec<Scheduled> {
        if let Some(state) = self.inner.pods.lock().get_mut(&pod.uid) {
            state.refresher.cancel();
            // The driver releases the address now too; its allocator hands a freed address out
            // again only after the other 252, so this deletion does not race the next owner's.
            self.pod_address(podnet::Op::Del, &state.ip);
            for i in state.instances.values() {
                if let Some(pid) = i.pid.filter(|p| pid_alive(*p)) {
                    let _ = killpg(
                        Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                        NixSignal::SIGKILL,
                    );
                }
                if let Some(cg) = &i.cgroup {
                    MemoryCgroups::remove(cg);
                }
            }
        }
        vec![Scheduled::now(Event::SandboxKilled)]
    }

    fn adopt(&self, pod: &PodHandle, sink: &EventSink) -> Option<Adopted> {
        let dir = self.pod_dir(&pod.uid);
        let record: PodRecord = serde_json::from_slice(&std::fs::read(dir.record()).ok()?).ok()?;
        let image_of = |name: &str| {
            find_container(&pod.pod, name)
                .and_then(|c| c.image.clone())
                .unwrap_or_default()
        };
        let mut running = Vec::new();
        let mut exited = Vec::new();
        let mut instances = HashMap::new();
        let names: Vec<String> = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            let Some(n) = dir.instances(&name).last().copied() else {
                continue;
            };
            let inst = dir.instance(&name, n);
            let Ok(container_id) = std::fs::read_to_string(inst.id()) else {
                continue;
            };
            let started: Option<Timestamp> = std::fs::read_to_string(inst.started())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let pid: Option<u32> = std::fs::read_to_string(inst.pid())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let exit: Option<ExitRecord> = std::fs::read(inst.exit())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match (exit, pid, started) {
                (None, Some(pid), Some(started_at)) if pid_alive(pid) => {
                    running.push((
                        name.clone(),
                        Running {
                            container_id: container_id.clone(),
                            image_id: images::image_id(&image_of(&name)),
                            started_at,
                        },
                    ));
                    instances.insert(
                        name.clone(),
                        InstanceState {
                            container_id: container_id.clone(),
                            pid: Some(pid),
                            cgroup: None,
                        },
                    );
                    self.watch_adopted(
                        pod.clone(),
                        name.clone(),
                        container_id,
                        inst,
                        pid,
                        sink.clone(),
                    );
                }
                (Some(e), _, started) if e.start_error.is_none() => exited.push((
                    name.clone(),
                    Terminated {
                        exit_code: e.exit_code,
                        reason: e
                            .reason
                            .clone()
                            .unwrap_or_else(|| Terminated::reason_for(e.exit_code).to_string()),
                        message: None,
                        signal: e.signal,
                        started_at: started,
                        finished_at: e.finished_at.parse().unwrap_or_else(|_| Timestamp::now()),
                        container_id,
                        image_id: images::image_id(&image_of(&name)),
                    },
                )),
                _ => {}
            }
        }
        let volumes = self.volumes_after_restart(pod, &dir);
        let refresher = CancellationToken::new();
        self.start_refresher(pod, record.ip.clone(), refresher.clone());
        // The node (container) may have lost its addresses with a restart.
        self.pod_address(podnet::Op::Add, &record.ip);
        self.inner.pods.lock().insert(
            pod.uid.clone(),
            PodState {
                dir,
                ip: record.ip.clone(),
                volumes,
                refresher,
                instances,
            },
        );
        Some(Adopted {
            pod_ip: record.ip.parse().ok(),
            running,
            exited,
        })
    }

    fn forget(&self, uid: &str) {
        if let Some(state) = self.inner.pods.lock().remove(uid) {
            state.refresher.cancel();
        }
        let dir = self.pod_dir(uid).root;
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(dir = %dir.display(), error = %e, "cannot remove pod directory");
            }
        });
    }

    fn logs(&self, pod: &PodHandle, request: &LogRequest) -> Result<LogStream, LogError> {
        let dir = self.pod_dir(&pod.uid);
        let instances = dir.instances(&request.container);
        let n = if request.previous {
            instances.len().checked_sub(2).map(|i| instances[i])
        } else {
            instances.last().copied()
        };
        let Some(n) = n else {
            return Err(LogError::NoPrevious {
                container: request.container.clone(),
                pod: pod.name().to_string(),
            });
        };
        let inst = dir.instance(&request.container, n);
        let log = FileLog::new(&inst.log, &inst.exit(), self.inner.config.rotation);
        Ok(InstanceLog::File(Arc::new(log)).read(request))
    }

    fn exec(
        &self,
        pod: &PodHandle,
        container: &str,
        start: ExecStart,
        input: tonic::Streaming<ExecInput>,
    ) -> Result<ExecStream, tonic::Status> {
        let pid = {
            let pods = self.inner.pods.lock();
            pods.get(&pod.uid)
                .and_then(|p| p.instances.get(container))
                .and_then(|i| i.pid)
        };
        let Some(pid) = pid.filter(|p| pid_alive(*p)) else {
            return Err(niwa_api::ApiError::bad_request(format!(
                "container {container:?} is not running"
            ))
            .to_grpc());
        };
        exec::session(self.inner.config.exe.clone(), pid, start, input)
    }

    fn attach(
        &self,
        pod: &PodHandle,
        container: &str,
        start: ExecStart,
        input: tonic::Streaming<ExecInput>,
    ) -> Result<ExecStream, tonic::Status> {
        // The current instance (what the kubelet adopted after a restart is found the same way).
        let dir = self.pod_dir(&pod.uid);
        let inst = dir
            .instances(container)
            .last()
            .map(|n| dir.instance(container, *n))
            .filter(|i| !i.exit().exists());
        let Some(inst) = inst else {
            return Err(niwa_api::ApiError::bad_request(format!(
                "container {container:?} is not running"
            ))
            .to_grpc());
        };
        attach::client::session(&inst.attach(), &start, input)
    }
}
