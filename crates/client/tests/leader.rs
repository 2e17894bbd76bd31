//! Leader election on a real Lease: one leader among two, hand-over on shutdown, takeover after
//! a leader is killed, and a leader that cannot renew steps down.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use niwa_client::k8s::api::coordination::v1::Lease;
use niwa_client::leader::{LeaderConfig, LeaderElector};
use niwa_client::{Api, Client};
use niwa_testkit::ControlPlane;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Short timings so tests are quick; margins stay generous for a loaded machine.
fn config(identity: &str) -> LeaderConfig {
    LeaderConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
        ..LeaderConfig::new("kube-system", "test-lock", identity)
    }
}

struct Candidate {
    elector: Arc<LeaderElector>,
    shutdown: CancellationToken,
    /// Terms started and terms whose token was cancelled.
    started: Arc<AtomicUsize>,
    stopped: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

fn campaign(client: Client, identity: &str) -> Candidate {
    let elector = Arc::new(LeaderElector::new(client, config(identity)));
    let shutdown = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn({
        let elector = elector.clone();
        let shutdown = shutdown.clone();
        let (started, stopped) = (started.clone(), stopped.clone());
        async move {
            let result = elector
                .run(shutdown, move |leading| {
                    let (started, stopped) = (started.clone(), stopped.clone());
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        leading.cancelled().await;
                        stopped.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await;
            if let Err(err) = result {
                panic!("election failed: {err}");
            }
        }
    });
    Candidate {
        elector,
        shutdown,
        started,
        stopped,
        task,
    }
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn holder(leases: &Api<Lease>) -> (String, i32) {
    let lease = leases.get("test-lock").await.expect("lease");
    let spec = lease.spec.unwrap_or_default();
    (
        spec.holder_identity.unwrap_or_default(),
        spec.lease_transitions.unwrap_or(0),
    )
}

#[tokio::test]
async fn one_leader_and_a_fast_hand_over_on_shutdown() {
    let cp = ControlPlane::start().await;
    let leases: Api<Lease> = cp.client().namespaced("kube-system");
    let a = campaign(cp.client(), "a");
    wait_for("a leads", Duration::from_secs(10), || a.elector.is_leader()).await;
    let b = campaign(cp.client(), "b");
    // b sees a live lease and waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!b.elector.is_leader());
    assert!(a.elector.is_leader());
    assert_eq!(b.elector.current_holder().as_deref(), Some("a"));
    assert_eq!(holder(&leases).await, ("a".to_string(), 0));

    // a shuts down: its work is cancelled, the lease released, b takes over well before the
    // 3 s lease would have expired on its own.
    let released_at = tokio::time::Instant::now();
    a.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), a.task)
        .await
        .expect("a stops")
        .expect("a's task");
    assert_eq!(a.stopped.load(Ordering::SeqCst), 1);
    wait_for("b leads", Duration::from_secs(10), || b.elector.is_leader()).await;
    assert!(
        released_at.elapsed() < Duration::from_millis(2500),
        "hand-over took {:?}",
        released_at.elapsed()
    );
    assert_eq!(holder(&leases).await, ("b".to_string(), 1));
    b.shutdown.cancel();
    let _ = b.task.await;
}

#[tokio::test]
async fn a_killed_leader_is_replaced_after_the_lease_expires() {
    let cp = ControlPlane::start().await;
    let a = campaign(cp.client(), "a");
    wait_for("a leads", Duration::from_secs(10), || a.elector.is_leader()).await;
    let b = campaign(cp.client(), "b");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Killed: no release, no more renewals.
    a.task.abort();
    let killed_at = tokio::time::Instant::now();
    wait_for("b leads", Duration::from_secs(15), || b.elector.is_leader()).await;
    assert!(
        killed_at.elapsed() >= Duration::from_millis(2000),
        "b must respect the 3 s lease of a (took over after {:?})",
        killed_at.elapsed()
    );
    assert_eq!(b.started.load(Ordering::SeqCst), 1);
    b.shutdown.cancel();
    let _ = b.task.await;
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_and_campaigns_again() {
    let cp = ControlPlane::start().await;
    let leases: Api<Lease> = cp.client().namespaced("kube-system");
    let a = campaign(cp.client(), "a");
    wait_for("a leads", Duration::from_secs(10), || a.elector.is_leader()).await;

    // An intruder overwrites the lease and keeps it fresh: a's renewals fail.
    let intruder = tokio::spawn({
        let leases = leases.clone();
        async move {
            loop {
                if let Ok(mut lease) = leases.get("test-lock").await {
                    let spec = lease.spec.get_or_insert_default();
                    spec.holder_identity = Some("intruder".into());
                    spec.lease_duration_seconds = Some(3);
                    spec.renew_time = Some(
                        niwa_client::k8s::apimachinery::pkg::apis::meta::v1::MicroTime(
                            jiff::Timestamp::now(),
                        ),
                    );
                    let _ = leases.replace(&lease).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    wait_for("a steps down", Duration::from_secs(10), || {
        !a.elector.is_leader() && a.stopped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(a.elector.current_holder().as_deref(), Some("intruder"));

    // The intruder goes away; a takes the lease again once it expires.
    intruder.abort();
    wait_for("a leads again", Duration::from_secs(15), || {
        a.elector.is_leader() && a.started.load(Ordering::SeqCst) == 2
    })
    .await;
    a.shutdown.cancel();
    let _ = a.task.await;
}

#[tokio::test]
async fn invalid_timings_are_rejected() {
    let cp = ControlPlane::start().await;
    let mut bad = config("a");
    bad.renew_deadline = Duration::from_secs(5);
    let err = LeaderElector::new(cp.client(), bad)
        .run(CancellationToken::new(), |_| async {})
        .await
        .expect_err("renew deadline past the lease duration");
    assert!(err.to_string().contains("lease_duration"), "{err}");
}
