//! Graceful deletion: preStop, SIGTERM, SIGKILL, removal.

use super::*;

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
