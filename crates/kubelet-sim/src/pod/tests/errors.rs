//! Image pull, config and run errors; activeDeadlineSeconds.

use super::*;

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
