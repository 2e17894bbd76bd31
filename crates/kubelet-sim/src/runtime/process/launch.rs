//! Running a container instance as a process: launch through the shim (image, command, env,
//! mounts, memory limit), report its exit, watch adopted instances, and run lifecycle handlers.

use std::os::unix::fs::PermissionsExt;

use super::*;

impl ProcessRuntime {
    pub(super) fn memory_limit(c: &Container) -> Option<u64> {
        let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
        let v = niwa_api::quantity::Quantity::parse(&q.0).ok()?.value();
        u64::try_from(v).ok().filter(|v| *v > 0)
    }

    /// Prepares and starts one container instance; reports Started/StartFailed, then Exited.
    pub(super) async fn start(self, pod: PodHandle, name: String, sink: EventSink) {
        let fail = |error: StartError| Event::StartFailed {
            container: name.clone(),
            error,
        };
        let Some(c) = find_container(&pod.pod, &name).cloned() else {
            sink.send(
                &pod.uid,
                fail(StartError::Config(format!("container {name:?} not found"))),
            )
            .await;
            return;
        };
        let image = c.image.clone().unwrap_or_default();
        let command = c.command.clone().unwrap_or_default();
        let args = c.args.clone().unwrap_or_default();
        let argv = match catalog::plan(&image, &command, &args, &self.inner.config.exe) {
            catalog::Plan::Run(argv) => argv,
            catalog::Plan::Unavailable(m) => {
                sink.send(&pod.uid, fail(StartError::ImagePull(m))).await;
                return;
            }
        };
        let ip = self.sandbox_ip(&pod.uid);
        let ctx = env::EnvContext {
            pod: &pod.pod,
            container: &c,
            pod_ip: ip.clone(),
            host_ip: pod.node.ip.to_string(),
            node_cpu: &self.inner.config.node_cpu,
            node_memory: &self.inner.config.node_memory,
        };
        let env = match env::resolve(&ctx, &self.inner.client).await {
            Ok(e) => e,
            Err(m) => {
                sink.send(&pod.uid, fail(StartError::Config(m))).await;
                return;
            }
        };
        let argv: Vec<String> = argv
            .iter()
            .map(|a| catalog::expand(a, |k| env.get(k)))
            .collect();
        let user = match identity::process_user(&pod.pod, &c) {
            Ok(u) => u,
            Err(m) => {
                sink.send(&pod.uid, fail(StartError::Config(m))).await;
                return;
            }
        };
        let mounts = match self.mounts(&pod, &c) {
            Ok(m) => m,
            Err(m) => {
                sink.send(&pod.uid, fail(StartError::Config(m))).await;
                return;
            }
        };
        let dir = self.pod_dir(&pod.uid);
        let n = dir.instances(&name).last().map_or(0, |n| n + 1);
        let inst = dir.instance(&name, n);
        let container_id = format!("niwa://{}", random_id());
        let cgroup = Self::memory_limit(&c).and_then(|limit| {
            let cg_name = format!("{}-{}-{n}", pod.uid, name);
            match self.inner.cgroups.create(&cg_name, limit) {
                Ok(p) => Some(p),
                Err(e) => {
                    debug!(error = %e, "memory limit not enforced");
                    None
                }
            }
        });
        let (hostname, _) = dns::hostnames(&pod.pod, &self.inner.config.dns.domain);
        let mut mounts = mounts;
        if self.inner.private_roots {
            // The termination message file (terminationMessagePath, /dev/termination-log).
            let file = inst.dir.join("termination-log");
            // World-writable: the process may run as another user (securityContext).
            if std::fs::create_dir_all(&inst.dir)
                .and_then(|_| std::fs::write(&file, b""))
                .and_then(|_| {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
                })
                .is_ok()
            {
                let target = c
                    .termination_message_path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/dev/termination-log".into());
                mounts.push(Mount {
                    source: file,
                    target: PathBuf::from(target),
                    read_only: false,
                });
            }
        }
        let launch = LaunchSpec {
            argv,
            env: env.into_vec(),
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            hostname,
            root: self.inner.private_roots.then(|| PrivateRoot {
                upper: inst.upper(),
                work: inst.work(),
                merged: inst.merged(),
                mounts,
            }),
            log: inst.log.clone(),
            log_max_size: self.inner.config.rotation.max_size,
            log_max_files: self.inner.config.rotation.max_files,
            exit: inst.exit(),
            pid: inst.pid(),
            memory_cgroup: cgroup.clone(),
            user,
            stdio: layout::Stdio {
                stdin: c.stdin == Some(true),
                stdin_once: c.stdin_once == Some(true),
                tty: c.tty == Some(true),
            },
            attach: Some(inst.attach()),
        };
        let prepared = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&inst.dir)?;
            std::fs::write(inst.id(), &container_id)?;
            std::fs::write(
                inst.launch(),
                serde_json::to_vec(&launch).map_err(std::io::Error::other)?,
            )
        })();
        if let Err(e) = prepared {
            sink.send(
                &pod.uid,
                fail(StartError::Run(format!(
                    "cannot prepare {}: {e}",
                    inst.dir.display()
                ))),
            )
            .await;
            return;
        }
        let shim_log = std::fs::File::create(inst.shim_log()).ok();
        let mut cmd = tokio::process::Command::new(&self.inner.config.exe);
        cmd.arg("shim")
            .arg(inst.launch())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped());
        match shim_log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(std::process::Stdio::null()),
        };
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                sink.send(
                    &pod.uid,
                    fail(StartError::Run(format!("cannot start the shim: {e}"))),
                )
                .await;
                return;
            }
        };
        let report = match child.stdout.take() {
            Some(out) => {
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(out);
                match tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut line))
                    .await
                {
                    Ok(Ok(_)) => ShimReport::parse(&line),
                    _ => None,
                }
            }
            None => None,
        };
        match report {
            Some(ShimReport::Started { pid, at }) => {
                let _ = std::fs::write(inst.started(), at.to_string());
                if let Some(p) = self.inner.pods.lock().get_mut(&pod.uid) {
                    p.instances.insert(
                        name.clone(),
                        InstanceState {
                            container_id: container_id.clone(),
                            pid: Some(pid),
                            cgroup: cgroup.clone(),
                        },
                    );
                }
                sink.send(
                    &pod.uid,
                    Event::Started {
                        container: name.clone(),
                        container_id: container_id.clone(),
                        image_id: images::image_id(&image),
                        at,
                    },
                )
                .await;
                let _ = child.wait().await;
                self.report_exit(
                    &pod,
                    &name,
                    &container_id,
                    &inst,
                    cgroup.as_deref(),
                    &c,
                    &sink,
                )
                .await;
            }
            Some(ShimReport::Failed(m)) => {
                let _ = child.wait().await;
                if let Some(cg) = &cgroup {
                    MemoryCgroups::remove(cg);
                }
                sink.send(&pod.uid, fail(StartError::Run(m))).await;
            }
            None => {
                let _ = child.kill().await;
                let m = std::fs::read_to_string(inst.shim_log()).unwrap_or_default();
                sink.send(
                    &pod.uid,
                    fail(StartError::Run(format!(
                        "the container shim failed: {}",
                        m.trim()
                    ))),
                )
                .await;
            }
        }
    }

    /// Reads how the instance ended and reports it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn report_exit(
        &self,
        pod: &PodHandle,
        name: &str,
        container_id: &str,
        inst: &InstanceDir,
        cgroup: Option<&Path>,
        c: &Container,
        sink: &EventSink,
    ) {
        let record: Option<ExitRecord> = std::fs::read(inst.exit())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let record = record.unwrap_or(ExitRecord {
            exit_code: 137,
            signal: None,
            reason: Some("ContainerStatusUnknown".into()),
            finished_at: Timestamp::now().to_string(),
            start_error: Some("the container's shim ended without recording the exit".into()),
        });
        if let Some(cg) = cgroup {
            MemoryCgroups::remove(cg);
        }
        let message = termination_message(c, inst, &record);
        sink.send(
            &pod.uid,
            Event::Exited {
                container: name.to_string(),
                container_id: container_id.to_string(),
                exit_code: record.exit_code,
                reason: record
                    .reason
                    .clone()
                    .or_else(|| record.start_error.as_ref().map(|_| "StartError".into())),
                message: message.or(record.start_error),
                signal: record.signal,
                at: record
                    .finished_at
                    .parse()
                    .unwrap_or_else(|_| Timestamp::now()),
            },
        )
        .await;
    }

    /// Follows an adopted instance (not our child any more) until it ends.
    pub(super) fn watch_adopted(
        &self,
        pod: PodHandle,
        name: String,
        container_id: String,
        inst: InstanceDir,
        pid: u32,
        sink: EventSink,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            while !inst.exit().exists() && pid_alive(pid) {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // The shim writes exit.json just before it ends.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let c = find_container(&pod.pod, &name).cloned().unwrap_or_default();
            this.report_exit(&pod, &name, &container_id, &inst, None, &c, &sink)
                .await;
        });
    }

    pub(super) fn instance_pid(&self, uid: &str, name: &str, container_id: &str) -> Option<u32> {
        let pods = self.inner.pods.lock();
        let i = pods.get(uid)?.instances.get(name)?;
        (i.container_id == container_id).then_some(i.pid).flatten()
    }

    pub(super) async fn run_handler(
        &self,
        pod: &PodHandle,
        c: &Container,
        pid: u32,
        h: Handler<'_>,
        timeout: Duration,
    ) -> probe::Outcome {
        let ip = self.sandbox_ip(&pod.uid);
        match h {
            Handler::Probe(p) => {
                if let Some(a) = &p.http_get {
                    probe::http_get(a, c, &ip, timeout).await
                } else if let Some(a) = &p.tcp_socket {
                    probe::tcp_socket(a, c, &ip, timeout).await
                } else if let Some(a) = &p.exec {
                    probe::exec(a, &self.inner.config.exe, pid, timeout).await
                } else if let Some(a) = &p.grpc {
                    probe::grpc(a, &ip, timeout).await
                } else {
                    Err("the probe has no handler".to_string())
                }
            }
            Handler::Lifecycle(l) => {
                if let Some(a) = &l.exec {
                    probe::exec(a, &self.inner.config.exe, pid, timeout).await
                } else if let Some(a) = &l.http_get {
                    probe::http_get(a, c, &ip, timeout).await
                } else if let Some(s) = &l.sleep {
                    tokio::time::sleep(secs(s.seconds).min(timeout)).await;
                    Ok(())
                } else if let Some(a) = &l.tcp_socket {
                    probe::tcp_socket(a, c, &ip, timeout).await
                } else {
                    Ok(())
                }
            }
        }
    }
}

pub(super) enum Handler<'a> {
    Probe(&'a Probe),
    Lifecycle(&'a LifecycleHandler),
}

/// `terminated.message`: the termination message file, or (FallbackToLogsOnError) the last log
/// lines of a failed container; at most 4096 bytes, as the kubelet.
fn termination_message(c: &Container, inst: &InstanceDir, record: &ExitRecord) -> Option<String> {
    let from_file = std::fs::read(inst.dir.join("termination-log"))
        .ok()
        .filter(|b| !b.is_empty());
    let text = match from_file {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None if c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
            && record.exit_code != 0 =>
        {
            let log = std::fs::read_to_string(&inst.log).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter_map(|l| crate::logs::LogLine::parse(l).map(|l| l.text))
                .collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            tail.join("\n")
        }
        None => return None,
    };
    let mut text = text;
    if text.len() > 4096 {
        let cut = text.len() - 4096;
        let boundary = (cut..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text = text[boundary..].to_string();
    }
    Some(text)
}
