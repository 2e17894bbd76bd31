//! The pod's `status` as the kubelet reports it, computed from the state machine: container
//! statuses (`convertToAPIContainerStatuses`), the phase (`getPhase`), and the kubelet-owned
//! conditions in the kubelet's order (PodReadyToStartContainers, Initialized, Ready,
//! ContainersReady, PodScheduled), keeping conditions owned by others (readiness gates,
//! DisruptionTarget) and every condition's `lastTransitionTime` while its status is unchanged.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::container::{ContainerKind, ContainerRecord, Instance, Terminated};
use super::machine::{PodMachine, RestartPolicy, Terminal};
use crate::time::Timestamp;

/// Condition types the kubelet owns (it rewrites them; others are carried over).
const KUBELET_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn terminated_state(t: &Terminated) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: (!t.container_id.is_empty()).then(|| t.container_id.clone()),
            exit_code: t.exit_code,
            finished_at: Some(time(t.finished_at)),
            message: t.message.clone(),
            reason: Some(t.reason.clone()),
            signal: t.signal,
            // A container that never started (StartError) reports the zero time, as Kubernetes.
            started_at: Some(time(t.started_at.unwrap_or(Timestamp::UNIX_EPOCH))),
        }),
        ..ContainerState::default()
    }
}

fn waiting_state(reason: &str, message: Option<&String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.cloned(),
        }),
        ..ContainerState::default()
    }
}

/// One container's status (`convertToAPIContainerStatuses`): a pending waiting reason (back-off,
/// pull or config error) shows as `waiting`, with the latest ended instance as `lastState`.
pub fn container_status(c: &ContainerRecord, has_init_containers: bool) -> ContainerStatus {
    let default_waiting = if has_init_containers {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let (state, last_state) = match (&c.current, &c.waiting) {
        (Some(Instance::Running(r)), _) => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(r.started_at)),
                }),
                ..ContainerState::default()
            },
            c.previous.as_ref().map(terminated_state),
        ),
        (current, Some((reason, message))) => {
            let last = match current {
                Some(Instance::Terminated(t)) => Some(t),
                _ => c.previous.as_ref(),
            };
            (
                waiting_state(reason, message.as_ref()),
                last.map(terminated_state),
            )
        }
        (Some(Instance::Terminated(t)), None) => (
            terminated_state(t),
            c.previous.as_ref().map(terminated_state),
        ),
        (None, None) => (waiting_state(default_waiting, None), None),
    };
    let (container_id, image_id) = match &c.current {
        Some(Instance::Running(r)) => (Some(r.container_id.clone()), r.image_id.clone()),
        Some(Instance::Terminated(t)) => (
            (!t.container_id.is_empty()).then(|| t.container_id.clone()),
            t.image_id.clone(),
        ),
        None => (None, String::new()),
    };
    ContainerStatus {
        name: c.spec.name.clone(),
        image: c.spec.image.clone(),
        image_id,
        container_id,
        ready: c.ready(),
        started: Some(c.started && c.running().is_some()),
        restart_count: i32::try_from(c.restart_count).unwrap_or(i32::MAX),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn state_of(s: &ContainerStatus) -> ContainerState {
    s.state.clone().unwrap_or_default()
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// Whether any app container has started (its status is running or terminated).
fn any_app_started(m: &PodMachine, statuses: &[ContainerStatus]) -> bool {
    m.containers
        .iter()
        .filter(|c| c.spec.kind == ContainerKind::App)
        .any(|c| {
            find(statuses, &c.spec.name).is_some_and(|s| {
                let st = state_of(s);
                st.running.is_some() || st.terminated.is_some() || last_terminated(s).is_some()
            })
        })
}

/// The pod phase, exactly as the kubelet's `getPhase`.
pub fn phase(m: &PodMachine, statuses: &[ContainerStatus], pod_is_terminal: bool) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &m.containers {
        let status = find(statuses, &c.spec.name);
        match c.spec.kind {
            ContainerKind::Init => {
                let Some(s) = status else {
                    pending_init += 1;
                    continue;
                };
                let st = state_of(s);
                if st.running.is_some() {
                    pending_init += 1;
                } else if let Some(t) = &st.terminated {
                    if t.exit_code != 0 {
                        failed_init += 1;
                    }
                } else if st.waiting.is_some() {
                    match last_terminated(s) {
                        Some(t) if t.exit_code != 0 => failed_init += 1,
                        Some(_) => {}
                        None => pending_init += 1,
                    }
                } else {
                    pending_init += 1;
                }
            }
            ContainerKind::Sidecar => {
                let Some(s) = status else {
                    unknown += 1;
                    continue;
                };
                let st = state_of(s);
                if st.running.is_some() {
                    if s.started != Some(true) {
                        pending_init += 1;
                    }
                    running += 1;
                } else if st.terminated.is_some() {
                    // A stopped sidecar does not count.
                } else if st.waiting.is_some() {
                    if last_terminated(s).is_none() {
                        pending_init += 1;
                    }
                } else {
                    pending_init += 1;
                    unknown += 1;
                }
            }
            ContainerKind::App => {
                let Some(s) = status else {
                    unknown += 1;
                    continue;
                };
                let st = state_of(s);
                if st.running.is_some() {
                    running += 1;
                } else if let Some(t) = &st.terminated {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                } else if st.waiting.is_some() {
                    if last_terminated(s).is_some() {
                        stopped += 1;
                    } else {
                        waiting += 1;
                    }
                } else {
                    unknown += 1;
                }
            }
        }
    }
    if failed_init > 0 && m.restart_policy == RestartPolicy::Never {
        return "Failed";
    }
    if (pending_init > 0 && !any_app_started(m, statuses)) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if m.restart_policy == RestartPolicy::Always {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if m.restart_policy == RestartPolicy::Never {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..PodCondition::default()
    }
}

fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// `GeneratePodInitializedCondition`.
fn initialized_condition(
    m: &PodMachine,
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let inits: Vec<_> = m
        .containers
        .iter()
        .filter(|c| c.spec.kind != ContainerKind::App)
        .collect();
    if inits.is_empty() {
        return condition("Initialized", true, None, None);
    }
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in &inits {
        let Some(s) = find(statuses, &c.spec.name) else {
            unknown.push(c.spec.name.as_str());
            continue;
        };
        let st = state_of(s);
        let done = match c.spec.kind {
            ContainerKind::Sidecar => s.started == Some(true),
            _ => st.terminated.as_ref().is_some_and(|t| t.exit_code == 0),
        };
        if !done {
            incomplete.push(c.spec.name.as_str());
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("Initialized", true, Some("PodCompleted"), None);
    }
    if m.initialized || any_app_started(m, statuses) {
        return condition("Initialized", true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        return condition("Initialized", true, None, None);
    }
    condition(
        "Initialized",
        false,
        Some("ContainersNotInitialized"),
        Some(messages.join(", ")),
    )
}

/// `GenerateContainersReadyCondition` (with the given type: ContainersReady; Ready reuses it).
fn containers_ready_condition(
    type_: &str,
    m: &PodMachine,
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    for c in m
        .containers
        .iter()
        .filter(|c| c.spec.kind != ContainerKind::Init)
    {
        match find(statuses, &c.spec.name) {
            Some(s) if !s.ready => unready.push(c.spec.name.as_str()),
            Some(_) => {}
            None => unknown.push(c.spec.name.as_str()),
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition(type_, false, Some("PodCompleted"), None);
    }
    if phase == "Failed" {
        return condition(type_, false, Some("PodFailed"), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        condition(type_, true, None, None)
    } else {
        condition(
            type_,
            false,
            Some("ContainersNotReady"),
            Some(messages.join(", ")),
        )
    }
}

/// `GeneratePodReadyCondition`: containers ready, then every readiness gate's condition True.
fn ready_condition(
    m: &PodMachine,
    statuses: &[ContainerStatus],
    phase: &str,
    foreign: &[PodCondition],
) -> PodCondition {
    let ready = containers_ready_condition("Ready", m, statuses, phase);
    if ready.status != "True" {
        return ready;
    }
    let mut messages = Vec::new();
    for gate in &m.readiness_gates {
        match foreign.iter().find(|c| &c.type_ == gate) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate \"{gate}\" does not exist."
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate \"{gate}\" is not \"True\", but {}",
                c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        ready
    } else {
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(messages.join(", ")),
        )
    }
}

/// The whole pod status. `previous` is the status last seen on the object (for carried-over
/// conditions and transition times), `host_ip` the node's address, `qos_class` the pod's class.
pub fn pod_status(
    m: &PodMachine,
    host_ip: &str,
    qos_class: &str,
    previous: Option<&PodStatus>,
    now: Timestamp,
) -> PodStatus {
    let has_init = m
        .containers
        .iter()
        .any(|c| c.spec.kind != ContainerKind::App);
    let mut init_statuses = Vec::new();
    let mut app_statuses = Vec::new();
    for c in &m.containers {
        let s = container_status(c, has_init);
        if c.spec.kind == ContainerKind::App {
            app_statuses.push(s);
        } else {
            init_statuses.push(s);
        }
    }
    let all: Vec<ContainerStatus> = init_statuses
        .iter()
        .chain(app_statuses.iter())
        .cloned()
        .collect();
    let pod_is_terminal = m.stopping() && !m.containers.iter().any(|c| c.active());
    let mut phase = phase(m, &all, pod_is_terminal);
    let (mut reason, mut message) = (None, None);
    if m.terminal == Some(Terminal::DeadlineExceeded) {
        phase = "Failed";
        reason = Some("DeadlineExceeded".to_string());
        message = Some("Pod was active on the node longer than the specified deadline".to_string());
    }

    let foreign: Vec<PodCondition> = previous
        .and_then(|p| p.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .collect();
    let sandbox_ready = matches!(m.sandbox, super::machine::Sandbox::Ready);
    let mut conditions = foreign.clone();
    conditions.push(condition(
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
    ));
    conditions.push(initialized_condition(m, &all, phase));
    conditions.push(ready_condition(m, &all, phase, &foreign));
    conditions.push(containers_ready_condition(
        "ContainersReady",
        m,
        &all,
        phase,
    ));
    conditions.push(condition("PodScheduled", true, None, None));
    let old_conditions = previous.and_then(|p| p.conditions.as_ref());
    for c in &mut conditions {
        if c.last_transition_time.is_some() {
            continue;
        }
        let old = old_conditions.and_then(|o| o.iter().find(|o| o.type_ == c.type_));
        c.last_transition_time = match old {
            Some(o) if o.status == c.status && o.last_transition_time.is_some() => {
                o.last_transition_time.clone()
            }
            _ => Some(time(now)),
        };
    }

    let pod_ip = m
        .pod_ip
        .clone()
        .or_else(|| previous.and_then(|p| p.pod_ip.clone()));
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        pod_ips: pod_ip.as_ref().map(|ip| vec![PodIP { ip: ip.clone() }]),
        pod_ip,
        start_time: m.start_time.map(time),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(app_statuses),
        qos_class: Some(
            previous
                .and_then(|p| p.qos_class.clone())
                .unwrap_or_else(|| qos_class.to_string()),
        ),
        reason,
        message,
        nominated_node_name: previous.and_then(|p| p.nominated_node_name.clone()),
        ..PodStatus::default()
    }
}
