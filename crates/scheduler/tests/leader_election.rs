//! Two schedulers with leader election: one schedules; when it dies mid-run the other takes
//! over once its Lease expires. No pod is lost and none is placed twice (every node is filled exactly to its pod limit).

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use niwa_client::ListParams;
use serde_json::json;

fn elected() -> niwa_scheduler::SchedulerConfig {
    let mut c = config();
    c.leader_elect = true;
    c.lease_namespace = "default".into();
    c.lease_duration = Duration::from_secs(3);
    c.renew_deadline = Duration::from_secs(2);
    c.retry_period = Duration::from_millis(500);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_pod_and_binds_none_twice() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    const NODES: usize = 10;
    const PER_NODE: u32 = 8;
    for i in 0..NODES {
        create_node(
            &client,
            &format!("n{i}"),
            "8",
            PER_NODE,
            json!({}),
            json!({}),
        )
        .await;
    }
    let a = start_scheduler(&cp, elected());
    let b = start_scheduler(&cp, elected());
    let total = NODES * PER_NODE as usize;
    let names: Vec<String> = (0..total).map(|i| format!("p{i:03}")).collect();
    let creator = {
        let client = client.clone();
        let names = names.clone();
        tokio::spawn(async move {
            for n in names {
                create_pod(&client, &n, json!({}), "10m", json!({})).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Kill whichever leads once a third of the pods are bound.
    let pods = client.namespaced::<Pod>("default");
    let bound = |list: &[Pod]| {
        list.iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let list = pods.list(&ListParams::default()).await.expect("list").items;
        if bound(&list) >= total / 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first leader did not schedule"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (leader, survivor) = if a.metrics.leader.get() == 1 {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.metrics.leader.get(), 1, "one of them leads");
    // A hard kill: the task is aborted, so the Lease is not released and must expire first.
    leader.task.abort();
    let killed_at = Instant::now();
    creator.await.expect("creator");

    let deadline = Instant::now() + Duration::from_secs(25);
    let list = loop {
        let list = pods.list(&ListParams::default()).await.expect("list").items;
        if bound(&list) == total {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {total} pods bound after failover",
            bound(&list)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(survivor.metrics.leader.get(), 1, "the survivor took over");
    assert!(
        killed_at.elapsed() >= Duration::from_secs(2),
        "took over only after the lease expired"
    );
    drop(leader);
    let mut per_node = std::collections::BTreeMap::<String, u32>::new();
    for p in &list {
        *per_node
            .entry(
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    assert!(
        per_node.values().all(|n| *n == PER_NODE),
        "every node exactly full: {per_node:?}"
    );
}
