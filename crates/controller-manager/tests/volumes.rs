//! PersistentVolume binder against a real apiserver (testkit): a claim binds to the smallest
//! fitting volume; deleting the claim releases (Retain) or deletes (Delete) the volume.

mod support;

use std::time::Duration;

use niwa_client::Api;
use niwa_client::k8s::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use niwa_testkit::ControlPlane;
use support::*;

fn pv(name: &str, size: &str, policy: &str) -> PersistentVolume {
    from_yaml(&format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec: {{capacity: {{storage: {size}}}, accessModes: [ReadWriteOnce], storageClassName: manual, persistentVolumeReclaimPolicy: {policy}, hostPath: {{path: /tmp/{name}}}}}\n"
    ))
}

fn pvc(name: &str, size: &str) -> PersistentVolumeClaim {
    from_yaml(&format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}, namespace: default}}\nspec: {{accessModes: [ReadWriteOnce], storageClassName: manual, resources: {{requests: {{storage: {size}}}}}}}\n"
    ))
}

fn pv_phase(pv: &PersistentVolume) -> Option<String> {
    pv.status.as_ref()?.phase.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_and_volumes_are_reclaimed() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let cm = Manager::start(&cp, "persistentvolume-binder").await;
    let pvs: Api<PersistentVolume> = client.cluster();
    let pvcs: Api<PersistentVolumeClaim> = client.namespaced("default");
    pvs.create(&pv("big", "10Gi", "Retain"))
        .await
        .expect("pv big");
    pvs.create(&pv("small", "2Gi", "Delete"))
        .await
        .expect("pv small");
    pvcs.create(&pvc("a", "1Gi")).await.expect("pvc a");
    eventually(Duration::from_secs(10), "a bound to small", || async {
        let c = pvcs.get("a").await.ok()?;
        let st = c.status?;
        (st.phase.as_deref() == Some("Bound") && c.spec?.volume_name.as_deref() == Some("small"))
            .then_some(())
    })
    .await;
    pvcs.create(&pvc("b", "5Gi")).await.expect("pvc b");
    eventually(
        Duration::from_secs(10),
        "b bound to big, volumes Bound",
        || async {
            let c = pvcs.get("b").await.ok()?;
            let big = pvs.get("big").await.ok()?;
            let small = pvs.get("small").await.ok()?;
            (c.spec?.volume_name.as_deref() == Some("big")
                && pv_phase(&big).as_deref() == Some("Bound")
                && pv_phase(&small).as_deref() == Some("Bound"))
            .then_some(())
        },
    )
    .await;
    // No volume left: a third claim stays Pending.
    pvcs.create(&pvc("c", "1Gi")).await.expect("pvc c");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = pvcs.get("c").await.expect("c");
    assert_ne!(c.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    // Reclaim: Delete deletes, Retain releases.
    pvcs.delete("a", &Default::default())
        .await
        .expect("delete a");
    pvcs.delete("b", &Default::default())
        .await
        .expect("delete b");
    eventually(
        Duration::from_secs(10),
        "small deleted, big Released",
        || async {
            let small = pvs.get_opt("small").await.ok()?;
            let big = pvs.get("big").await.ok()?;
            (small.is_none() && pv_phase(&big).as_deref() == Some("Released")).then_some(())
        },
    )
    .await;
    cm.shutdown().await;
}
