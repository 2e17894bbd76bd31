//! Sidecars, image changes, adoption after a kubelet restart, readiness gates, QoS class.

use super::*;

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
