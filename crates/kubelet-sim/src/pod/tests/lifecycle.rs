//! Start-up, init containers, restart policies and CrashLoopBackOff.

use super::*;

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
