//! Readiness, liveness and startup probes.

use super::*;

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
