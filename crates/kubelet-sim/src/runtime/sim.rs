//! The sim runtime (kwok-style): no processes. Sandboxes and containers come up after configurable
//! delays (plus jitter), run until told to stop, and behave as the pod's annotations say, so that
//! Jobs complete, crash loops and probe failures can be staged, and `kubectl logs` has something
//! to show. Every annotation can be given for the whole pod (`sim.niwa.io/<key>`) or for one
//! container (`sim.niwa.io/<key>.<container>`, which wins):
//!
//! | annotation | effect |
//! |---|---|
//! | `run-duration` (`30s`, `1m`) | the container exits after running this long |
//! | `exit-code` (`0`) | the code it exits with (alone: exits right after starting) |
//! | `exit-reason` (`OOMKilled`) | the termination reason reported |
//! | `start-delay` | time from start to running (overrides `--sim-start-delay`) |
//! | `image-pull-error` (`true` or a message) | the image cannot be pulled (ErrImagePull) |
//! | `fail-probes` (`liveness,readiness,startup`) | those probes fail |
//! | `ready-after` (`20s`) | readiness and startup probes fail until it has run this long |
//! | `ignore-sigterm` (`true`) | only SIGKILL stops it (at the end of the grace period) |
//! | `stop-delay` | time from SIGTERM to exit (overrides `--sim-stop-delay`) |
//! | `logs` (text) | lines the container writes to stdout when it starts |
//!
//! Containers stopped by SIGTERM exit with code 0, by SIGKILL with 137.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;

use super::{Adopted, EventSink, PodHandle, Runtime, Scheduled};
use crate::config::RuntimeKind;
use crate::images;
use crate::logs::memory::MemoryLog;
use crate::logs::{InstanceLog, LogError, LogRequest, LogStream, StreamKind};
use crate::pod::{Event, ProbeKind, Running, Signal, StartError};
use crate::time::{Timestamp, after, elapsed, parse_go_duration};

/// Annotation prefix of the sim runtime's per-pod behaviour.
pub const ANNOTATION_PREFIX: &str = "sim.niwa.io/";

/// Delays of the simulated runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub sandbox_delay: Duration,
    pub start_delay: Duration,
    pub stop_delay: Duration,
    /// Each delay gets a uniformly random extra of up to this much.
    pub jitter: Duration,
    /// Lines kept per container instance for `kubectl logs`.
    pub log_lines: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            sandbox_delay: Duration::ZERO,
            start_delay: Duration::ZERO,
            stop_delay: Duration::ZERO,
            jitter: Duration::ZERO,
            log_lines: 1000,
        }
    }
}

/// How one container behaves, from the pod's annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    pub run_for: Option<Duration>,
    pub exit_code: i32,
    pub exit_reason: Option<String>,
    pub start_delay: Option<Duration>,
    pub pull_error: Option<String>,
    pub fail_probes: Vec<ProbeKind>,
    pub ready_after: Option<Duration>,
    pub ignore_sigterm: bool,
    pub stop_delay: Option<Duration>,
    pub logs: Option<String>,
}

impl Behaviour {
    pub fn of(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> Behaviour {
        let annotations = pod.metadata.annotations.as_ref();
        let get = |key: &str| -> Option<&str> {
            let a = annotations?;
            a.get(&format!("{ANNOTATION_PREFIX}{key}.{container}"))
                .or_else(|| a.get(&format!("{ANNOTATION_PREFIX}{key}")))
                .map(String::as_str)
        };
        let exit_code = get("exit-code").and_then(|c| c.trim().parse().ok());
        let run_for = get("run-duration")
            .and_then(parse_go_duration)
            .or(exit_code.map(|_| Duration::ZERO));
        Behaviour {
            run_for,
            exit_code: exit_code.unwrap_or(0),
            exit_reason: get("exit-reason").map(str::to_string),
            start_delay: get("start-delay").and_then(parse_go_duration),
            pull_error: get("image-pull-error").filter(|v| *v != "false").map(|v| {
                if v == "true" {
                    "rpc error: code = NotFound desc = failed to pull and unpack image: not found (simulated)".into()
                } else {
                    v.to_string()
                }
            }),
            fail_probes: get("fail-probes")
                .map(|v| {
                    v.split(',')
                        .filter_map(|k| match k.trim() {
                            "liveness" => Some(ProbeKind::Liveness),
                            "readiness" => Some(ProbeKind::Readiness),
                            "startup" => Some(ProbeKind::Startup),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ready_after: get("ready-after").and_then(parse_go_duration),
            ignore_sigterm: get("ignore-sigterm") == Some("true"),
            stop_delay: get("stop-delay").and_then(parse_go_duration),
            logs: get("logs").map(str::to_string),
        }
    }
}

#[derive(Debug)]
struct Instance {
    container_id: String,
    started_at: Timestamp,
    log: Option<Arc<MemoryLog>>,
}

#[derive(Debug, Default)]
struct SimContainer {
    current: Option<Instance>,
    previous_log: Option<Arc<MemoryLog>>,
}

/// The simulated runtime. State per pod is a few hundred bytes (plus logs when a pod asks for
/// them), so a process can hold hundreds of thousands of pods.
#[derive(Debug)]
pub struct SimRuntime {
    config: SimConfig,
    pods: Mutex<HashMap<String, HashMap<String, SimContainer>>>,
    ids: AtomicU64,
}

impl SimRuntime {
    pub fn new(config: SimConfig) -> SimRuntime {
        SimRuntime {
            config,
            pods: Mutex::default(),
            ids: AtomicU64::new(rand::rng().random()),
        }
    }

    fn delay(&self, base: Duration) -> Duration {
        if self.config.jitter.is_zero() {
            return base;
        }
        let extra = rand::rng()
            .random_range(0..=self.config.jitter.as_micros().min(u128::from(u64::MAX)) as u64);
        base + Duration::from_micros(extra)
    }

    fn container_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut id = String::with_capacity(64 + 6);
        id.push_str("sim://");
        for _ in 0..4 {
            h ^= h >> 31;
            h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            id.push_str(&format!("{h:016x}"));
        }
        id
    }

    fn started_at(&self, uid: &str, container: &str, container_id: &str) -> Option<Timestamp> {
        let pods = self.pods.lock();
        let c = pods.get(uid)?.get(container)?.current.as_ref()?;
        (c.container_id == container_id).then_some(c.started_at)
    }
}

impl Runtime for SimRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Sim
    }

    fn create_sandbox(&self, _pod: &PodHandle, ip: Ipv4Addr, _sink: &EventSink) -> Vec<Scheduled> {
        vec![Scheduled {
            after: self.delay(self.config.sandbox_delay),
            event: Event::SandboxReady {
                pod_ip: Some(ip.to_string()),
            },
        }]
    }

    fn start_container(
        &self,
        pod: &PodHandle,
        container: &str,
        _sink: &EventSink,
    ) -> Vec<Scheduled> {
        let b = Behaviour::of(&pod.pod, container);
        if let Some(message) = b.pull_error {
            return vec![Scheduled::now(Event::StartFailed {
                container: container.to_string(),
                error: StartError::ImagePull(message),
            })];
        }
        let image = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(s.containers.iter())
            })
            .find(|c| c.name == container)
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let start = self.delay(b.start_delay.unwrap_or(self.config.start_delay));
        let started_at = after(Timestamp::now(), start);
        let container_id = self.container_id();
        let log = b.logs.as_ref().map(|text| {
            let log = Arc::new(MemoryLog::new(self.config.log_lines));
            log.push(started_at, StreamKind::Stdout, text);
            log
        });
        {
            let mut pods = self.pods.lock();
            let c = pods
                .entry(pod.uid.clone())
                .or_default()
                .entry(container.to_string())
                .or_default();
            if let Some(old) = c.current.take() {
                if let Some(l) = &old.log {
                    l.close();
                }
                c.previous_log = old.log;
            }
            c.current = Some(Instance {
                container_id: container_id.clone(),
                started_at,
                log,
            });
        }
        let mut out = vec![Scheduled {
            after: start,
            event: Event::Started {
                container: container.to_string(),
                container_id: container_id.clone(),
                image_id: images::image_id(&image),
                at: started_at,
            },
        }];
        if let Some(run_for) = b.run_for {
            out.push(Scheduled {
                after: start + run_for,
                event: Event::Exited {
                    container: container.to_string(),
                    container_id,
                    exit_code: b.exit_code,
                    reason: b.exit_reason,
                    message: None,
                    signal: None,
                    at: after(started_at, run_for),
                },
            });
        }
        out
    }

    fn probe(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        kind: ProbeKind,
        _sink: &EventSink,
    ) -> Vec<Scheduled> {
        let b = Behaviour::of(&pod.pod, container);
        let mut success = !b.fail_probes.contains(&kind);
        if success
            && kind != ProbeKind::Liveness
            && let Some(ready_after) = b.ready_after
        {
            let ran = self
                .started_at(&pod.uid, container, container_id)
                .map(|t| elapsed(Timestamp::now(), t))
                .unwrap_or_default();
            success = ran >= ready_after;
        }
        vec![Scheduled::now(Event::Probed {
            container: container.to_string(),
            container_id: container_id.to_string(),
            kind,
            success,
            message: if success {
                String::new()
            } else {
                "simulated probe failure".into()
            },
        })]
    }

    fn pre_stop(
        &self,
        _pod: &PodHandle,
        container: &str,
        container_id: &str,
        _timeout: Duration,
        _sink: &EventSink,
    ) -> Vec<Scheduled> {
        vec![Scheduled::now(Event::PreStopDone {
            container: container.to_string(),
            container_id: container_id.to_string(),
        })]
    }

    fn signal(
        &self,
        pod: &PodHandle,
        container: &str,
        container_id: &str,
        signal: Signal,
        _sink: &EventSink,
    ) -> Vec<Scheduled> {
        let b = Behaviour::of(&pod.pod, container);
        let (code, delay) = match signal {
            Signal::Term if b.ignore_sigterm => return Vec::new(),
            Signal::Term => (
                0,
                self.delay(b.stop_delay.unwrap_or(self.config.stop_delay)),
            ),
            Signal::Kill => (137, Duration::ZERO),
        };
        vec![Scheduled {
            after: delay,
            event: Event::Exited {
                container: container.to_string(),
                container_id: container_id.to_string(),
                exit_code: code,
                reason: None,
                message: None,
                signal: None,
                at: after(Timestamp::now(), delay),
            },
        }]
    }

    fn kill_sandbox(&self, _pod: &PodHandle, _sink: &EventSink) -> Vec<Scheduled> {
        vec![Scheduled::now(Event::SandboxKilled)]
    }

    fn adopt(&self, pod: &PodHandle, _sink: &EventSink) -> Option<Adopted> {
        // Nothing was lost: simulated containers "kept running" while the kubelet was away, so
        // whatever the last status said runs, runs.
        let status = pod.pod.status.as_ref()?;
        let pod_ip = status.pod_ip.as_ref().and_then(|ip| ip.parse().ok());
        let running = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|s| {
                let started = s.state.as_ref()?.running.as_ref()?.started_at.as_ref()?.0;
                Some((
                    s.name.clone(),
                    Running {
                        container_id: s
                            .container_id
                            .clone()
                            .unwrap_or_else(|| self.container_id()),
                        image_id: s.image_id.clone(),
                        started_at: started,
                    },
                ))
            })
            .collect();
        Some(Adopted {
            pod_ip,
            running,
            exited: Vec::new(),
        })
    }

    fn forget(&self, uid: &str) {
        self.pods.lock().remove(uid);
    }

    fn logs(&self, pod: &PodHandle, request: &LogRequest) -> Result<LogStream, LogError> {
        let pods = self.pods.lock();
        let c = pods.get(&pod.uid).and_then(|p| p.get(&request.container));
        let log = if request.previous {
            c.and_then(|c| c.previous_log.clone())
        } else {
            c.and_then(|c| c.current.as_ref())
                .and_then(|i| i.log.clone())
        };
        match log {
            Some(log) => Ok(InstanceLog::Memory(log).read(request)),
            // A container that wrote nothing has an empty log.
            None => Ok(Box::pin(futures::stream::empty())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn behaviour_from_annotations_with_per_container_overrides() {
        let p = pod(json!({
            "sim.niwa.io/run-duration": "5s",
            "sim.niwa.io/exit-code.side": "3",
            "sim.niwa.io/fail-probes": "liveness, readiness",
            "sim.niwa.io/image-pull-error.side": "true",
        }));
        let app = Behaviour::of(&p, "app");
        assert_eq!(app.run_for, Some(Duration::from_secs(5)));
        assert_eq!(app.exit_code, 0);
        assert_eq!(
            app.fail_probes,
            vec![ProbeKind::Liveness, ProbeKind::Readiness]
        );
        assert!(app.pull_error.is_none());
        let side = Behaviour::of(&p, "side");
        assert_eq!(
            (side.run_for, side.exit_code),
            (Some(Duration::from_secs(5)), 3)
        );
        assert!(side.pull_error.is_some());
        let plain = Behaviour::of(&pod(json!({"sim.niwa.io/exit-code": "1"})), "app");
        assert_eq!(
            plain.run_for,
            Some(Duration::ZERO),
            "an exit code alone exits at once"
        );
    }

    #[test]
    fn start_schedules_running_then_exit() {
        let rt = SimRuntime::new(SimConfig {
            start_delay: Duration::from_millis(50),
            ..SimConfig::default()
        });
        let p = pod(json!({"sim.niwa.io/run-duration": "2s", "sim.niwa.io/exit-code": "4"}));
        let handle = PodHandle {
            uid: "u1".into(),
            pod: Arc::new(p),
            node: Arc::new(crate::config::NodeIdentity {
                name: "n".into(),
                ip: Ipv4Addr::LOCALHOST,
                pod_cidr: crate::config::PodCidr {
                    base: Ipv4Addr::new(127, 244, 1, 0),
                },
            }),
        };
        let (sink, _rx) = EventSink::channel();
        let out = rt.start_container(&handle, "app", &sink);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].after, Duration::from_millis(50));
        assert!(matches!(out[0].event, Event::Started { .. }));
        assert_eq!(out[1].after, Duration::from_millis(2050));
        assert!(matches!(out[1].event, Event::Exited { exit_code: 4, .. }));
        let Event::Started {
            container_id,
            image_id,
            ..
        } = &out[0].event
        else {
            return;
        };
        assert!(container_id.starts_with("sim://") && container_id.len() == 70);
        assert!(image_id.starts_with("docker.io/library/busybox@sha256:"));
        let kill = rt.signal(&handle, "app", container_id, Signal::Kill, &sink);
        assert!(matches!(
            kill[0].event,
            Event::Exited { exit_code: 137, .. }
        ));
    }
}
