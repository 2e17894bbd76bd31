//! Golden tests of the pod state machine: every transition with an injected clock, checked against
//! what Kubernetes reports (phase, conditions, container states, reasons and messages).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use serde_json::{Value, json};

use super::*;
use crate::time::{Timestamp, after};

const HOST_IP: &str = "127.1.0.1";

fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH) // 2026-01-01T00:00:00Z
}

fn pod(spec: Value) -> Pod {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
        "spec": spec,
    });
    serde_json::from_value(value).unwrap_or_default()
}

fn one(image: &str) -> Value {
    json!({"containers": [{"name": "app", "image": image}]})
}

/// Drives one machine: time, events, and the actions it asked for (Records kept apart).
struct Harness {
    m: PodMachine,
    pod: Pod,
    now: Timestamp,
    actions: Vec<Action>,
    records: Vec<(EventType, &'static str, String)>,
    previous: Option<PodStatus>,
    ids: u32,
}

impl Harness {
    fn new(spec: Value) -> Harness {
        let pod = pod(spec);
        let m = PodMachine::new(&pod, MachineConfig::default());
        let mut h = Harness {
            m,
            pod,
            now: t0(),
            actions: Vec::new(),
            records: Vec::new(),
            previous: None,
            ids: 0,
        };
        h.step();
        h
    }

    fn step(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        for a in self.m.step(self.now) {
            match a {
                Action::Record {
                    type_,
                    reason,
                    message,
                    ..
                } => self.records.push((type_, reason, message)),
                other => out.push(other),
            }
        }
        self.actions.extend(out.iter().cloned());
        out
    }

    fn event(&mut self, e: Event) -> Vec<Action> {
        self.m.handle(e, self.now);
        self.step()
    }

    fn advance(&mut self, secs: u64) -> Vec<Action> {
        self.now = after(self.now, Duration::from_secs(secs));
        self.step()
    }

    /// Advance to the machine's next wake-up (at most `limit` seconds ahead).
    fn wake(&mut self, limit: u64) -> Vec<Action> {
        let Some(w) = self.m.next_wake() else {
            return Vec::new();
        };
        assert!(
            w <= after(self.now, Duration::from_secs(limit)),
            "next wake too far: {w}"
        );
        self.now = self.now.max(w);
        self.step()
    }

    fn take(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn sandbox_ready(&mut self) -> Vec<Action> {
        assert_eq!(self.take(), vec![Action::CreateSandbox]);
        self.event(Event::SandboxReady {
            pod_ip: Some("127.244.1.2".into()),
        })
    }

    fn id(&self, name: &str) -> String {
        self.m
            .container(name)
            .and_then(|c| c.running())
            .map(|r| r.container_id.clone())
            .unwrap_or_default()
    }

    fn start(&mut self, name: &str) -> Vec<Action> {
        self.ids += 1;
        let id = format!("niwa://{name}-{}", self.ids);
        self.event(Event::Started {
            container: name.into(),
            container_id: id,
            image_id: "niwa.local/img@sha256:00".into(),
            at: self.now,
        })
    }

    fn exit(&mut self, name: &str, code: i32) -> Vec<Action> {
        let id = self.id(name);
        self.event(Event::Exited {
            container: name.into(),
            container_id: id,
            exit_code: code,
            reason: None,
            message: None,
            signal: None,
            at: self.now,
        })
    }

    fn probe(&mut self, name: &str, kind: ProbeKind, success: bool) -> Vec<Action> {
        let id = self.id(name);
        self.event(Event::Probed {
            container: name.into(),
            container_id: id,
            kind,
            success,
            message: if success {
                String::new()
            } else {
                "HTTP probe failed with statuscode: 500".into()
            },
        })
    }

    fn status(&mut self) -> PodStatus {
        let qos = qos::qos_class(self.pod.spec.as_ref().unwrap_or(&Default::default()));
        let s = pod_status(&self.m, HOST_IP, qos, self.previous.as_ref(), self.now);
        self.previous = Some(s.clone());
        s
    }

    fn cs(&mut self, name: &str) -> ContainerStatus {
        let s = self.status();
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_default()
    }

    fn phase(&mut self) -> String {
        self.status().phase.unwrap_or_default()
    }

    fn condition(&mut self, type_: &str) -> (String, Option<String>, Option<String>) {
        let s = self.status();
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap_or_default();
        (c.status, c.reason, c.message)
    }
}

fn start_action(name: &str) -> Action {
    Action::StartContainer {
        container: name.into(),
    }
}

fn waiting(cs: &ContainerStatus) -> (String, String) {
    let w = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.clone())
        .unwrap_or_default();
    (w.reason.unwrap_or_default(), w.message.unwrap_or_default())
}

fn last_exit(cs: &ContainerStatus) -> Option<(i32, String)> {
    cs.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| (t.exit_code, t.reason.clone().unwrap_or_default()))
}

fn to_json(s: &PodStatus) -> Value {
    serde_json::to_value(s).unwrap_or_default()
}

#[test]
fn single_container_pod_runs_and_reports_kubernetes_status() {
    let mut h = Harness::new(one("nginx"));
    let pending = to_json(&h.status());
    assert_eq!(
        pending,
        json!({
            "phase": "Pending",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                 "message": "containers with unready status: [app]", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
                 "message": "containers with unready status: [app]", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
            "hostIP": "127.1.0.1",
            "hostIPs": [{"ip": "127.1.0.1"}],
            "startTime": "2026-01-01T00:00:00Z",
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": "app", "image": "nginx", "imageID": "", "ready": false, "restartCount": 0,
                "started": false, "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {},
            }],
        })
    );
    assert_eq!(h.sandbox_ready(), vec![start_action("app")]);
    h.advance(1);
    h.start("app");
    let running = to_json(&h.status());
    assert_eq!(running["phase"], "Running");
    assert_eq!(running["podIP"], "127.244.1.2");
    assert_eq!(running["podIPs"], json!([{"ip": "127.244.1.2"}]));
    assert_eq!(
        running["containerStatuses"][0],
        json!({
            "name": "app", "image": "nginx", "imageID": "niwa.local/img@sha256:00",
            "containerID": "niwa://app-1", "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}, "lastState": {},
        })
    );
    let conditions: Vec<(String, String, String)> = running["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("").to_string(),
                c["lastTransitionTime"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |ty: &str, st: &str, t: &str| (ty.to_string(), st.to_string(), t.to_string());
    assert_eq!(
        conditions,
        vec![
            expect("PodReadyToStartContainers", "True", "2026-01-01T00:00:01Z"),
            expect("Initialized", "True", "2026-01-01T00:00:00Z"),
            expect("Ready", "True", "2026-01-01T00:00:01Z"),
            expect("ContainersReady", "True", "2026-01-01T00:00:01Z"),
            expect("PodScheduled", "True", "2026-01-01T00:00:00Z"),
        ]
    );
    assert!(
        h.records
            .iter()
            .any(|(_, r, m)| *r == "Started" && m == "Started container app")
    );
    assert_eq!(
        h.m.next_wake(),
        None,
        "a healthy pod without probes needs no timer"
    );
}

#[test]
fn init_containers_run_in_order_before_app_containers() {
    let mut h = Harness::new(json!({
        "initContainers": [{"name": "init-a", "image": "busybox"}, {"name": "init-b", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    assert_eq!(h.sandbox_ready(), vec![start_action("init-a")]);
    assert_eq!(waiting(&h.cs("init-b")).0, "PodInitializing");
    assert_eq!(waiting(&h.cs("app")).0, "PodInitializing");
    assert_eq!(h.phase(), "Pending");
    assert_eq!(
        h.condition("Initialized"),
        (
            "False".into(),
            Some("ContainersNotInitialized".into()),
            Some("containers with incomplete status: [init-a init-b]".into())
        )
    );
    assert_eq!(h.start("init-a"), vec![]);
    assert_eq!(h.exit("init-a", 0), vec![start_action("init-b")]);
    let a = h.cs("init-a");
    let t = a.state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(h.start("init-b"), vec![]);
    assert_eq!(h.exit("init-b", 0), vec![start_action("app")]);
    h.start("app");
    assert_eq!(h.phase(), "Running");
    assert_eq!(h.condition("Initialized").0, "True");
}

#[test]
fn failed_init_container_fails_the_pod_under_never() {
    let mut h = Harness::new(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    h.sandbox_ready();
    h.start("init");
    assert_eq!(h.exit("init", 3), vec![Action::KillSandbox]);
    assert_eq!(h.phase(), "Failed");
    assert_eq!(h.condition("Ready").1.as_deref(), Some("PodFailed"));
    assert_eq!(waiting(&h.cs("app")).0, "PodInitializing");
    h.event(Event::SandboxKilled);
    assert_eq!(h.condition("PodReadyToStartContainers").0, "False");
    assert!(!h.actions.iter().any(|a| *a == start_action("app")));
}

#[test]
fn failed_init_container_restarts_with_backoff_under_always() {
    let mut h = Harness::new(json!({
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    h.sandbox_ready();
    h.start("init");
    assert_eq!(
        h.exit("init", 1),
        vec![start_action("init")],
        "first restart is immediate"
    );
    h.start("init");
    assert_eq!(h.exit("init", 1), vec![]);
    assert_eq!(waiting(&h.cs("init")).0, "CrashLoopBackOff");
    assert_eq!(h.phase(), "Pending");
    assert_eq!(h.wake(10), vec![start_action("init")]);
    h.start("init");
    assert_eq!(h.exit("init", 0), vec![start_action("app")]);
    assert_eq!(h.cs("init").restart_count, 2);
}

#[test]
fn crash_loop_backoff_doubles_and_reports_kubernetes_messages() {
    let mut h = Harness::new(one("busybox"));
    h.sandbox_ready();
    let mut restart_delays = Vec::new();
    let mut crash_at = h.now;
    for round in 0..6 {
        h.start("app");
        let delay = h.now.duration_since(crash_at).as_secs();
        if round > 0 {
            restart_delays.push(delay);
        }
        h.advance(1);
        crash_at = h.now;
        let mut actions = h.exit("app", 1);
        if round >= 1 {
            let cs = h.cs("app");
            let (reason, message) = waiting(&cs);
            assert_eq!(reason, "CrashLoopBackOff");
            let expected = [10, 20, 40, 80, 160][round - 1];
            let go = crate::time::go_duration(Duration::from_secs(expected));
            assert_eq!(
                message,
                format!("back-off {go} restarting failed container=app pod=p_default(uid-1)")
            );
            assert_eq!(last_exit(&cs), Some((1, "Error".into())));
            assert_eq!(cs.restart_count, round as i32);
            assert_eq!(
                h.phase(),
                "Running",
                "restartPolicy Always: still Running while backing off"
            );
            assert_eq!(h.condition("Ready").0, "False");
            actions = h.wake(400);
        }
        assert_eq!(actions, vec![start_action("app")]);
    }
    assert_eq!(restart_delays, vec![0, 10, 20, 40, 80]);
    assert!(h.records.iter().any(|(t, r, m)| *t == EventType::Warning
        && *r == "BackOff"
        && m == "Back-off restarting failed container app in pod p_default(uid-1)"));
}

#[test]
fn backoff_resets_after_ten_minutes_of_running() {
    let mut h = Harness::new(one("busybox"));
    h.sandbox_ready();
    h.start("app");
    assert_eq!(h.exit("app", 1), vec![start_action("app")]);
    h.start("app");
    assert_eq!(h.exit("app", 1), vec![]);
    h.wake(10);
    h.start("app");
    h.advance(601);
    assert_eq!(
        h.exit("app", 1),
        vec![start_action("app")],
        "ran 10 minutes: restart at once"
    );
}

#[test]
fn restart_policies_on_exit() {
    // OnFailure: success completes the pod.
    let mut h = Harness::new(
        json!({"restartPolicy": "OnFailure", "containers": [{"name": "app", "image": "busybox"}]}),
    );
    h.sandbox_ready();
    h.start("app");
    assert_eq!(h.exit("app", 1), vec![start_action("app")]);
    h.start("app");
    assert_eq!(h.exit("app", 0), vec![Action::KillSandbox]);
    assert_eq!(h.phase(), "Succeeded");
    let cs = h.cs("app");
    let t = cs
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .unwrap_or_default();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(
        h.condition("Ready"),
        ("False".into(), Some("PodCompleted".into()), None)
    );
    assert_eq!(
        h.condition("ContainersReady").1.as_deref(),
        Some("PodCompleted")
    );

    // Never: a failure fails the pod, no restart.
    let mut h = Harness::new(
        json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"}]}),
    );
    h.sandbox_ready();
    h.start("app");
    assert_eq!(h.exit("app", 2), vec![Action::KillSandbox]);
    assert_eq!(h.phase(), "Failed");
    assert_eq!(h.cs("app").restart_count, 0);
    h.event(Event::SandboxKilled);
    assert_eq!(h.m.next_wake(), None);
    assert_eq!(h.advance(3600), vec![]);
    assert!(!h.m.finished(), "a completed pod stays until it is deleted");
    // Deleting a completed pod removes it at once.
    let mut deleted = h.pod.clone();
    deleted.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(h.now));
    deleted.metadata.deletion_grace_period_seconds = Some(30);
    h.m.update(&deleted, h.now);
    assert_eq!(h.step(), vec![Action::RemovePod]);
    assert!(h.m.finished());
}

#[test]
fn oom_killed_reason_is_reported() {
    let mut h = Harness::new(
        json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "busybox"}]}),
    );
    h.sandbox_ready();
    h.start("app");
    let id = h.id("app");
    h.event(Event::Exited {
        container: "app".into(),
        container_id: id,
        exit_code: 137,
        reason: Some("OOMKilled".into()),
        message: None,
        signal: None,
        at: h.now,
    });
    let t = h
        .cs("app")
        .state
        .and_then(|s| s.terminated)
        .unwrap_or_default();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
}

fn probed(kind: &str, probe: Value) -> Value {
    let mut c = json!({"name": "app", "image": "nginx"});
    c[kind] = probe;
    json!({"containers": [c], "terminationGracePeriodSeconds": 5})
}

fn probe_action(h: &Harness, kind: ProbeKind) -> Action {
    Action::Probe {
        container: "app".into(),
        container_id: h.id("app"),
        kind,
    }
}

#[test]
fn readiness_probe_flips_ready_with_thresholds() {
    let mut h = Harness::new(probed(
        "readinessProbe",
        json!({"httpGet": {"port": 80}, "initialDelaySeconds": 3, "periodSeconds": 5, "failureThreshold": 2}),
    ));
    h.sandbox_ready();
    assert_eq!(h.start("app"), vec![]);
    let cs = h.cs("app");
    assert_eq!((cs.ready, cs.started), (false, Some(true)));
    assert_eq!(
        h.condition("Ready").2.as_deref(),
        Some("containers with unready status: [app]")
    );
    assert_eq!(h.advance(2), vec![]);
    assert_eq!(
        h.wake(1),
        vec![probe_action(&h, ProbeKind::Readiness)],
        "after initialDelaySeconds"
    );
    h.probe("app", ProbeKind::Readiness, true);
    assert_eq!(h.condition("Ready").0, "True");
    assert_eq!(h.condition("ContainersReady").0, "True");
    h.wake(5);
    h.probe("app", ProbeKind::Readiness, false);
    assert_eq!(
        h.condition("Ready").0,
        "True",
        "one failure is below the threshold of 2"
    );
    h.wake(5);
    h.probe("app", ProbeKind::Readiness, false);
    assert_eq!(
        h.condition("Ready"),
        (
            "False".into(),
            Some("ContainersNotReady".into()),
            Some("containers with unready status: [app]".into())
        )
    );
    assert_eq!(h.phase(), "Running");
    assert!(h.records.iter().any(|(_, r, m)| *r == "Unhealthy"
        && m == "Readiness probe failed: HTTP probe failed with statuscode: 500"));
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let mut h = Harness::new(probed(
        "livenessProbe",
        json!({"httpGet": {"port": 80}, "periodSeconds": 1}),
    ));
    h.sandbox_ready();
    assert_eq!(h.start("app"), vec![probe_action(&h, ProbeKind::Liveness)]);
    h.probe("app", ProbeKind::Liveness, true);
    for _ in 0..2 {
        assert_eq!(h.wake(1), vec![probe_action(&h, ProbeKind::Liveness)]);
        assert_eq!(h.probe("app", ProbeKind::Liveness, false), vec![]);
    }
    h.wake(1);
    let id = h.id("app");
    assert_eq!(
        h.probe("app", ProbeKind::Liveness, false),
        vec![Action::Signal {
            container: "app".into(),
            container_id: id.clone(),
            signal: Signal::Term
        }]
    );
    assert!(h.records.iter().any(|(_, r, m)| *r == "Killing"
        && m == "Container app failed liveness probe, will be restarted"));
    // No more liveness probes on the doomed instance.
    assert_eq!(h.advance(1), vec![]);
    // SIGKILL at the grace period (5 s from the pod spec).
    assert_eq!(
        h.wake(5),
        vec![Action::Signal {
            container: "app".into(),
            container_id: id,
            signal: Signal::Kill
        }]
    );
    assert_eq!(h.exit("app", 137), vec![start_action("app")]);
    h.start("app");
    let cs = h.cs("app");
    assert_eq!(cs.restart_count, 1);
    assert_eq!(last_exit(&cs), Some((137, "Error".into())));
}

#[test]
fn startup_probe_gates_liveness_and_kills_on_failure() {
    let mut c = json!({"name": "app", "image": "nginx"});
    c["startupProbe"] =
        json!({"tcpSocket": {"port": 80}, "periodSeconds": 1, "failureThreshold": 2});
    c["livenessProbe"] = json!({"tcpSocket": {"port": 80}, "periodSeconds": 1});
    let mut h = Harness::new(json!({"containers": [c]}));
    h.sandbox_ready();
    assert_eq!(h.start("app"), vec![probe_action(&h, ProbeKind::Startup)]);
    assert_eq!(h.cs("app").started, Some(false));
    assert!(!h.cs("app").ready);
    h.probe("app", ProbeKind::Startup, false);
    assert_eq!(
        h.wake(1),
        vec![probe_action(&h, ProbeKind::Startup)],
        "liveness waits for startup"
    );
    let liveness = probe_action(&h, ProbeKind::Liveness);
    assert_eq!(h.probe("app", ProbeKind::Startup, true), vec![liveness]);
    let cs = h.cs("app");
    assert_eq!((cs.started, cs.ready), (Some(true), true));

    // A startup probe that never succeeds kills the container.
    let mut c = json!({"name": "app", "image": "nginx"});
    c["startupProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2});
    let mut h = Harness::new(json!({"containers": [c], "terminationGracePeriodSeconds": 1}));
    h.sandbox_ready();
    h.start("app");
    h.probe("app", ProbeKind::Startup, false);
    h.wake(1);
    let actions = h.probe("app", ProbeKind::Startup, false);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Signal {
                signal: Signal::Term,
                ..
            }]
        ),
        "{actions:?}"
    );
    assert!(
        h.records
            .iter()
            .any(|(_, _, m)| m == "Container app failed startup probe, will be restarted")
    );
}

fn delete(h: &mut Harness, grace: i64) {
    let mut deleted = h.pod.clone();
    deleted.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(h.now));
    deleted.metadata.deletion_grace_period_seconds = Some(grace);
    h.m.update(&deleted, h.now);
}

#[test]
fn graceful_deletion_runs_prestop_then_sigterm_then_sigkill_then_removes() {
    let mut h = Harness::new(json!({
        "containers": [{"name": "app", "image": "nginx",
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}}],
    }));
    h.sandbox_ready();
    h.start("app");
    let id = h.id("app");
    delete(&mut h, 10);
    assert_eq!(
        h.step(),
        vec![Action::PreStop {
            container: "app".into(),
            container_id: id.clone(),
            timeout: Duration::from_secs(10)
        }]
    );
    assert_eq!(h.phase(), "Running", "still running while it terminates");
    h.advance(3);
    assert_eq!(
        h.event(Event::PreStopDone {
            container: "app".into(),
            container_id: id.clone()
        }),
        vec![Action::Signal {
            container: "app".into(),
            container_id: id.clone(),
            signal: Signal::Term
        }]
    );
    // The container ignores SIGTERM: SIGKILL when the rest of the grace period (7 s) is over.
    assert_eq!(h.advance(6), vec![]);
    assert_eq!(
        h.wake(1),
        vec![Action::Signal {
            container: "app".into(),
            container_id: id,
            signal: Signal::Kill
        }]
    );
    assert_eq!(h.exit("app", 137), vec![Action::KillSandbox]);
    assert_eq!(h.phase(), "Failed", "terminal once every container stopped");
    assert_eq!(h.event(Event::SandboxKilled), vec![Action::RemovePod]);
    assert!(h.m.finished());
}

#[test]
fn deletion_with_zero_grace_still_waits_the_two_second_minimum() {
    let mut h = Harness::new(one("nginx"));
    h.sandbox_ready();
    h.start("app");
    let id = h.id("app");
    delete(&mut h, 0);
    assert_eq!(
        h.step(),
        vec![Action::Signal {
            container: "app".into(),
            container_id: id.clone(),
            signal: Signal::Term
        }]
    );
    assert_eq!(h.advance(1), vec![]);
    assert_eq!(
        h.wake(1),
        vec![Action::Signal {
            container: "app".into(),
            container_id: id,
            signal: Signal::Kill
        }]
    );
    // A container that exits 0 on SIGTERM makes the deleted pod Succeeded.
    h.exit("app", 0);
    assert_eq!(h.phase(), "Succeeded");
}

#[test]
fn deleting_a_pod_that_never_started_removes_it() {
    let mut h = Harness::new(one("nginx"));
    assert_eq!(h.take(), vec![Action::CreateSandbox]);
    delete(&mut h, 30);
    assert_eq!(h.step(), vec![]);
    assert_eq!(
        h.event(Event::SandboxReady { pod_ip: None }),
        vec![Action::KillSandbox]
    );
    assert_eq!(h.event(Event::SandboxKilled), vec![Action::RemovePod]);
}

#[test]
fn force_deleted_object_stops_everything_without_removal() {
    let mut h = Harness::new(one("nginx"));
    h.sandbox_ready();
    h.start("app");
    h.m.object_deleted(h.now);
    assert!(matches!(
        h.step().as_slice(),
        [Action::Signal {
            signal: Signal::Term,
            ..
        }]
    ));
    assert_eq!(h.exit("app", 143), vec![Action::KillSandbox]);
    assert_eq!(h.event(Event::SandboxKilled), vec![]);
    assert!(h.m.finished());
}

#[test]
fn image_pull_errors_back_off() {
    let mut h = Harness::new(one("redis"));
    h.sandbox_ready();
    let msg = "niwa has no image registry".to_string();
    assert_eq!(
        h.event(Event::StartFailed {
            container: "app".into(),
            error: StartError::ImagePull(msg.clone())
        }),
        vec![]
    );
    assert_eq!(waiting(&h.cs("app")), ("ErrImagePull".into(), msg.clone()));
    assert_eq!(h.phase(), "Pending");
    assert_eq!(h.wake(5), vec![]);
    assert_eq!(
        waiting(&h.cs("app")),
        (
            "ImagePullBackOff".into(),
            "Back-off pulling image \"redis\"".into()
        )
    );
    assert_eq!(
        h.wake(5),
        vec![start_action("app")],
        "pull retried when the 10 s back-off ends"
    );
    assert_eq!(
        h.event(Event::StartFailed {
            container: "app".into(),
            error: StartError::ImagePull(msg)
        }),
        vec![]
    );
    assert_eq!(waiting(&h.cs("app")).0, "ErrImagePull");
    h.wake(5);
    assert_eq!(waiting(&h.cs("app")).0, "ImagePullBackOff");
    assert_eq!(h.advance(14), vec![]);
    assert_eq!(
        h.wake(1),
        vec![start_action("app")],
        "second back-off is 20 s"
    );
    h.start("app");
    assert_eq!(h.phase(), "Running");
}

#[test]
fn config_errors_are_retried() {
    let mut h = Harness::new(one("busybox"));
    h.sandbox_ready();
    let msg = "configmap \"settings\" not found".to_string();
    h.event(Event::StartFailed {
        container: "app".into(),
        error: StartError::Config(msg.clone()),
    });
    assert_eq!(
        waiting(&h.cs("app")),
        ("CreateContainerConfigError".into(), msg)
    );
    assert_eq!(h.wake(5), vec![start_action("app")]);
}

#[test]
fn run_errors_become_start_error_then_crash_loop() {
    let mut h = Harness::new(one("busybox"));
    h.sandbox_ready();
    let msg = "exec: \"nope\": executable file not found in $PATH".to_string();
    h.event(Event::StartFailed {
        container: "app".into(),
        error: StartError::Run(msg.clone()),
    });
    let cs = h.cs("app");
    assert_eq!(waiting(&cs), ("RunContainerError".into(), msg.clone()));
    let t = cs.last_state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    assert_eq!(t.started_at.map(|t| t.0), Some(Timestamp::UNIX_EPOCH));
    assert_eq!(h.wake(5), vec![start_action("app")]);
    h.event(Event::StartFailed {
        container: "app".into(),
        error: StartError::Run(msg),
    });
    h.wake(5);
    assert_eq!(waiting(&h.cs("app")).0, "CrashLoopBackOff");
    assert_eq!(h.cs("app").restart_count, 1);
}

#[test]
fn active_deadline_fails_the_pod() {
    let mut h = Harness::new(
        json!({"activeDeadlineSeconds": 30, "containers": [{"name": "app", "image": "nginx"}]}),
    );
    h.sandbox_ready();
    h.start("app");
    let actions = h.wake(30);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Signal {
                signal: Signal::Term,
                ..
            }]
        ),
        "{actions:?}"
    );
    let s = h.status();
    assert_eq!(s.phase.as_deref(), Some("Failed"));
    assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        s.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
}

#[test]
fn sidecars_start_first_and_stop_last() {
    let mut h = Harness::new(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "log", "image": "busybox", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "busybox"}],
    }));
    assert_eq!(h.sandbox_ready(), vec![start_action("log")]);
    assert_eq!(h.start("log"), vec![start_action("app")]);
    h.start("app");
    assert_eq!(h.phase(), "Running");
    let actions = h.exit("app", 0);
    assert!(
        matches!(actions.as_slice(), [Action::Signal { container, signal: Signal::Term, .. }] if container == "log"),
        "{actions:?}"
    );
    assert_eq!(h.phase(), "Running", "sidecar still running");
    assert_eq!(h.exit("log", 143), vec![Action::KillSandbox]);
    assert_eq!(h.phase(), "Succeeded", "sidecar exit codes do not count");
}

#[test]
fn sidecar_restarts_even_under_never() {
    let mut h = Harness::new(json!({
        "restartPolicy": "Never",
        "initContainers": [{"name": "log", "image": "busybox", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "busybox"}],
    }));
    h.sandbox_ready();
    h.start("log");
    h.start("app");
    assert_eq!(h.exit("log", 1), vec![start_action("log")]);
}

#[test]
fn image_change_restarts_the_container() {
    let mut h = Harness::new(
        json!({"restartPolicy": "Never", "containers": [{"name": "app", "image": "nginx"}]}),
    );
    h.sandbox_ready();
    h.start("app");
    let mut changed = h.pod.clone();
    if let Some(spec) = changed.spec.as_mut() {
        spec.containers[0].image = Some("httpd".into());
    }
    h.m.update(&changed, h.now);
    assert!(matches!(
        h.step().as_slice(),
        [Action::Signal {
            signal: Signal::Term,
            ..
        }]
    ));
    assert_eq!(
        h.exit("app", 0),
        vec![start_action("app")],
        "restarted despite restartPolicy Never"
    );
    h.start("app");
    assert_eq!(h.cs("app").image, "httpd");
}

#[test]
fn adoption_keeps_running_containers_and_counts() {
    let mut h = Harness::new(one("nginx"));
    h.sandbox_ready();
    h.start("app");
    h.exit("app", 1);
    h.start("app");
    let mut pod = h.pod.clone();
    pod.status = Some(h.status());
    let running = h.m.container("app").and_then(|c| c.running().cloned());
    let Some(running) = running else {
        panic!("app not running")
    };

    let mut m = PodMachine::new(&pod, MachineConfig::default());
    m.adopt(
        &pod,
        Some("127.244.1.2".into()),
        &[("app".into(), running.clone())],
        &[],
        h.now,
    );
    assert_eq!(
        m.step(after(h.now, Duration::from_secs(1))),
        vec![],
        "nothing restarted"
    );
    let s = pod_status(&m, HOST_IP, "BestEffort", pod.status.as_ref(), h.now);
    let cs = s.container_statuses.unwrap_or_default().remove(0);
    assert_eq!(cs.restart_count, 1);
    assert_eq!(
        cs.container_id.as_deref(),
        Some(running.container_id.as_str())
    );
    assert!(cs.ready);
    assert_eq!(last_exit(&cs), Some((1, "Error".into())));

    // A container that vanished while the kubelet was down is reported as Kubernetes does.
    let mut m = PodMachine::new(&pod, MachineConfig::default());
    m.adopt(&pod, Some("127.244.1.2".into()), &[], &[], h.now);
    let s = pod_status(&m, HOST_IP, "BestEffort", pod.status.as_ref(), h.now);
    let cs = s.container_statuses.unwrap_or_default().remove(0);
    let t = cs.state.and_then(|s| s.terminated).unwrap_or_default();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (137, Some("ContainerStatusUnknown"))
    );
    assert_eq!(
        m.step(h.now),
        vec![start_action("app")],
        "restartPolicy Always restarts it"
    );
}

#[test]
fn readiness_gates_hold_ready_until_their_condition_is_true() {
    let mut h = Harness::new(json!({
        "readinessGates": [{"conditionType": "example.com/lb"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }));
    h.sandbox_ready();
    h.start("app");
    let (status, reason, message) = h.condition("Ready");
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("False", Some("ReadinessGatesNotReady"))
    );
    assert_eq!(
        message.as_deref(),
        Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
    );
    assert_eq!(h.condition("ContainersReady").0, "True");
    let mut previous = h.status();
    if let Some(c) = previous.conditions.as_mut() {
        c.insert(
            0,
            k8s_openapi::api::core::v1::PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                ..Default::default()
            },
        );
    }
    h.previous = Some(previous);
    let s = h.status();
    let types: Vec<_> = s
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(
        types[0], "example.com/lb",
        "foreign conditions are kept, first"
    );
    assert_eq!(h.condition("Ready").0, "True");
}

#[test]
fn qos_class_from_resources() {
    let mut h = Harness::new(json!({"containers": [{"name": "app", "image": "nginx",
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}));
    assert_eq!(h.status().qos_class.as_deref(), Some("Guaranteed"));
}
