//! Golden tests of the pod state machine: every transition with an injected clock, checked against
//! what Kubernetes reports (phase, conditions, container states, reasons and messages).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use serde_json::{Value, json};

use super::*;
use crate::time::{Timestamp, after};

mod deletion;
mod errors;
mod features;
mod lifecycle;
mod probes;

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
