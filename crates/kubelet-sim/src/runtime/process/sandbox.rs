//! The pod sandbox of the process runtime: its directory, address and volumes (set up at
//! creation, found again after a kubelet restart), the mounts of each container, and the refresher
//! that keeps projected volumes (ConfigMaps, Secrets, service account tokens) current.

use super::*;

impl ProcessRuntime {
    /// Keeps ConfigMap/Secret volumes current until `stop`.
    pub(super) fn start_refresher(&self, pod: &PodHandle, ip: String, stop: CancellationToken) {
        let has_projected = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.config_map.is_some()
                    || v.secret.is_some()
                    || v.projected.is_some()
                    || v.downward_api.is_some()
            });
        if !has_projected {
            return;
        }
        let this = self.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let dir = this.pod_dir(&pod.uid).volumes();
            let host_ip = pod.node.ip.to_string();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(this.inner.config.volume_resync) => {}
                }
                // The latest pod object is not needed: volume sources are immutable in a pod.
                volumes::refresh(&dir, &pod.pod, &this.volume_context(&ip, &host_ip)).await;
            }
        });
    }

    pub(super) async fn setup_sandbox(
        &self,
        pod: &PodHandle,
        ip: Ipv4Addr,
    ) -> Result<(), (&'static str, String)> {
        let dir = self.pod_dir(&pod.uid);
        let io = |e: std::io::Error| ("FailedCreatePodSandBox", e.to_string());
        self.inner
            .config
            .pod_net
            .apply_async(podnet::Op::Add, ip)
            .await
            .map_err(|e| ("FailedCreatePodSandBox", e.to_string()))?;
        tokio::fs::create_dir_all(dir.etc()).await.map_err(io)?;
        let record = PodRecord {
            namespace: pod.namespace().to_string(),
            name: pod.name().to_string(),
            uid: pod.uid.clone(),
            ip: ip.to_string(),
        };
        tokio::fs::write(
            dir.record(),
            serde_json::to_vec(&record).unwrap_or_default(),
        )
        .await
        .map_err(io)?;
        let domain = &self.inner.config.dns.domain;
        tokio::fs::write(
            dir.etc().join("resolv.conf"),
            dns::resolv_conf(&pod.pod, &self.inner.config.dns),
        )
        .await
        .map_err(io)?;
        tokio::fs::write(
            dir.etc().join("hosts"),
            dns::hosts_file(&pod.pod, &ip.to_string(), domain),
        )
        .await
        .map_err(io)?;
        let (hostname, _) = dns::hostnames(&pod.pod, domain);
        tokio::fs::write(dir.etc().join("hostname"), format!("{hostname}\n"))
            .await
            .map_err(io)?;
        let host_ip = pod.node.ip.to_string();
        let ip_text = ip.to_string();
        let volumes = volumes::setup(
            &dir.volumes(),
            &pod.pod,
            &self.volume_context(&ip_text, &host_ip),
        )
        .await
        .map_err(|m| ("FailedMount", m))?;
        let refresher = CancellationToken::new();
        self.start_refresher(pod, ip_text.clone(), refresher.clone());
        let old = self.inner.pods.lock().insert(
            pod.uid.clone(),
            PodState {
                dir,
                ip: ip_text,
                volumes,
                refresher,
                instances: HashMap::new(),
            },
        );
        if let Some(old) = old {
            old.refresher.cancel();
        }
        Ok(())
    }

    /// The bind mounts of a container: its volumeMounts and the pod's DNS files.
    pub(super) fn mounts(&self, pod: &PodHandle, c: &Container) -> Result<Vec<Mount>, String> {
        let pods = self.inner.pods.lock();
        let state = pods
            .get(&pod.uid)
            .ok_or_else(|| "the pod sandbox is gone".to_string())?;
        let mut out = Vec::new();
        for vm in c.volume_mounts.iter().flatten() {
            let hv = state
                .volumes
                .get(&vm.name)
                .ok_or_else(|| format!("volume {:?} not found", vm.name))?;
            let mut source = hv.path.clone();
            if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if Path::new(sub)
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
                {
                    return Err(format!("subPath {sub:?} must not contain '..'"));
                }
                source = source.join(sub);
                if !source.exists() && !hv.projected {
                    std::fs::create_dir_all(&source)
                        .map_err(|e| format!("mkdir {}: {e}", source.display()))?;
                }
            }
            out.push(Mount {
                source,
                target: PathBuf::from(&vm.mount_path),
                read_only: vm.read_only.unwrap_or(false) || hv.read_only,
            });
        }
        if !self.inner.private_roots {
            if let Some(m) = out.first() {
                return Err(format!(
                    "volume mounts need root: niwa-kubelet is not running as root, so it cannot give container {:?} a private \
                     mount namespace to mount {} at {}; run the kubelet as root, or drop the volumeMounts",
                    c.name,
                    m.source.display(),
                    m.target.display()
                ));
            }
            return Ok(out);
        }
        for f in ["resolv.conf", "hosts", "hostname"] {
            out.push(Mount {
                source: state.dir.etc().join(f),
                target: PathBuf::from("/etc").join(f),
                read_only: false,
            });
        }
        Ok(out)
    }

    /// Volume locations of an adopted pod (and a background re-set-up for claims and projections).
    pub(super) fn volumes_after_restart(
        &self,
        pod: &PodHandle,
        dir: &PodDir,
    ) -> HashMap<String, HostVolume> {
        let mut out = HashMap::new();
        for v in pod.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let hv = if let Some(h) = &v.host_path {
                HostVolume {
                    path: PathBuf::from(&h.path),
                    read_only: false,
                    projected: false,
                }
            } else if v.empty_dir.is_some() {
                HostVolume {
                    path: dir.volume(&v.name),
                    read_only: false,
                    projected: false,
                }
            } else if v.persistent_volume_claim.is_some() {
                continue;
            } else {
                HostVolume {
                    path: dir.volume(&v.name),
                    read_only: true,
                    projected: true,
                }
            };
            out.insert(v.name.clone(), hv);
        }
        let this = self.clone();
        let pod = pod.clone();
        let volumes_dir = dir.volumes();
        tokio::spawn(async move {
            let ip = this.sandbox_ip(&pod.uid);
            let host_ip = pod.node.ip.to_string();
            if let Ok(v) =
                volumes::setup(&volumes_dir, &pod.pod, &this.volume_context(&ip, &host_ip)).await
                && let Some(p) = this.inner.pods.lock().get_mut(&pod.uid)
            {
                p.volumes = v;
            }
        });
        out
    }
}
