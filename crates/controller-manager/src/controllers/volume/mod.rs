//! PersistentVolume binder (Kubernetes' `persistentvolume-binder-controller`) with dynamic
//! provisioning: Pending claims bind to fitting Available volumes (claimRef on the volume,
//! `volumeName` on the claim, both phases Bound, the bind-completed annotations); a claim no volume
//! fits is provisioned by its StorageClass — niwa's built-in `local-path` provisioner
//! ([`provision`]) creates a directory volume on the node of the claim's first pod, another
//! provisioner is waited for; volumes whose claim is gone become Released and, with reclaim policy
//! Delete, are deleted (a local-path volume's directory first). One worker, so two claims never
//! take the same volume. Events as Kubernetes: `FailedBinding`, `WaitForFirstConsumer`,
//! `ExternalProvisioning`, `ProvisioningSucceeded`, `ProvisioningFailed`, `VolumeDelete`.
//! Decisions in [`core`] and [`provision`].

pub mod core;
pub mod provision;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use niwa_client::runtime::watcher;
use niwa_client::{ObjectRef, ResourceExt, Store, WorkQueue};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Shared, keyed};
use crate::informer::{Change, Informer};

struct Ctx {
    shared: Arc<Shared>,
    pvs: Store<PersistentVolume>,
    pvcs: Store<PersistentVolumeClaim>,
    classes: Store<StorageClass>,
}

fn keys<K: niwa_client::Object>(c: &Change<K>, all: &Store<K>) -> Vec<ObjectRef> {
    match c.object() {
        Some(o) => vec![o.object_ref()],
        None => all.state().iter().map(|o| o.object_ref()).collect(),
    }
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tasks = JoinSet::new();
    let pvs = Informer::start(
        shared.client.cluster::<PersistentVolume>(),
        watcher::Config::default(),
        &mut tasks,
        shutdown.clone(),
    );
    let pvcs = Informer::start(
        shared.client.all::<PersistentVolumeClaim>(),
        watcher::Config::default(),
        &mut tasks,
        shutdown.clone(),
    );
    let classes = Informer::start(
        shared.client.cluster::<StorageClass>(),
        watcher::Config::default(),
        &mut tasks,
        shutdown.clone(),
    );
    let (pv_store, pvc_store) = (pvs.store(), pvcs.store());
    let class_store = classes.store();
    // A class appearing (or changing) may let a Pending claim be provisioned.
    let b3 = pvc_store.clone();
    let (a, b) = (pv_store.clone(), pvc_store.clone());
    // A volume change may let a Pending claim bind: volumes also requeue every Pending claim.
    let b2 = pvc_store.clone();
    let a2 = pv_store.clone();
    let triggers = stream::select_all(vec![
        pvs.subscribe()
            .flat_map(move |c| {
                let mut k = keys(&c, &a);
                k.extend(
                    b2.filter(|p| phase(p) != "Bound")
                        .iter()
                        .map(|p| p.object_ref()),
                );
                stream::iter(k)
            })
            .boxed(),
        pvcs.subscribe()
            .flat_map(move |c| {
                // The claim's volume follows it (a deleted claim releases its volume).
                let mut k = keys(&c, &b);
                if let Some(claim) = c.object() {
                    k.extend(
                        a2.filter(|pv| core::refers_to(pv, claim))
                            .iter()
                            .map(|pv| pv.object_ref()),
                    );
                }
                stream::iter(k)
            })
            .boxed(),
        classes
            .subscribe()
            .flat_map(move |_| {
                stream::iter(
                    b3.filter(|p| phase(p) != "Bound")
                        .iter()
                        .map(|p| p.object_ref())
                        .collect::<Vec<_>>(),
                )
            })
            .boxed(),
    ]);
    pv_store.wait_until_ready().await;
    pvc_store.wait_until_ready().await;
    class_store.wait_until_ready().await;
    let queue = WorkQueue::new();
    let ctx = Arc::new(Ctx {
        shared,
        pvs: pv_store,
        pvcs: pvc_store,
        classes: class_store,
    });
    keyed::run(
        "persistentvolume-binder-controller",
        queue,
        triggers,
        1,
        shutdown,
        move |key| sync(key, ctx.clone()),
    )
    .await;
    while tasks.join_next().await.is_some() {}
}

fn phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

async fn sync(key: ObjectRef, ctx: Arc<Ctx>) -> Result<Option<Duration>, niwa_client::Error> {
    if key.namespace.is_some() {
        return sync_claim(key, &ctx).await;
    }
    let Some(pv) = ctx.pvs.get(&key) else {
        return Ok(None);
    };
    let claim = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| {
            ctx.pvcs.get(
                &ObjectRef::new(r.name.as_deref().unwrap_or_default())
                    .within(r.namespace.as_deref().unwrap_or_default()),
            )
        });
    let state = core::volume_state(&pv, claim.as_deref());
    let api = ctx.shared.client.cluster::<PersistentVolume>();
    if state == core::VolumeState::Delete {
        let dir_pattern = &ctx.shared.settings.local_path_dir;
        if let Some(dir) = provision::removable_dir(&pv, dir_pattern) {
            // The directory is on this machine when the nodes are (a process cluster); elsewhere
            // it stays behind (see docs/controller-manager.md).
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => tracing::info!(volume = %pv.name_any(), dir = %dir.display(), "removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(volume = %pv.name_any(), dir = %dir.display(), error = %e,
                        "cannot remove the volume's directory")
                }
            }
        }
        match api.delete(&pv.name_any(), &Default::default()).await {
            Ok(_) => ctx.shared.events.publish(
                pv.object_reference(),
                "Normal",
                "VolumeDelete",
                format!(
                    "Deleted volume {} (its claim is gone, reclaim policy Delete)",
                    pv.name_any()
                ),
            ),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        return Ok(None);
    }
    let want = core::phase_name(state);
    if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(want) {
        let mut updated = (*pv).clone();
        updated.status.get_or_insert_with(Default::default).phase = Some(want.into());
        match api.replace_status(&updated).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

async fn sync_claim(key: ObjectRef, ctx: &Ctx) -> Result<Option<Duration>, niwa_client::Error> {
    let Some(pvc) = ctx.pvcs.get(&key) else {
        return Ok(None);
    };
    if pvc.metadata.deletion_timestamp.is_some() || phase(&pvc) == "Bound" {
        return Ok(None);
    }
    let class = provision::claim_class(&pvc).and_then(|c| ctx.classes.get(&ObjectRef::new(c)));
    if provision::waits_for_consumer(&pvc, class.as_deref()) {
        ctx.shared.events.publish(
            pvc.object_reference(),
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        );
        return Ok(None);
    }
    let all = ctx.pvs.state();
    let refs: Vec<&PersistentVolume> = all.iter().map(|p| p.as_ref()).collect();
    let Some(pv) = core::choose(&pvc, &refs) else {
        let decision =
            provision::decide(&pvc, class.as_deref(), &ctx.shared.settings.local_path_dir);
        return provision_claim(&pvc, decision, ctx).await;
    };
    let pv_api = ctx.shared.client.cluster::<PersistentVolume>();
    let ns = key.namespace.clone().unwrap_or_default();
    let pvc_api = ctx.shared.client.namespaced::<PersistentVolumeClaim>(&ns);
    // 1. The volume points at the claim (optimistic concurrency: a conflict means someone else
    //    moved first; the retry chooses again).
    let mut bound_pv = pv.clone();
    if !core::refers_to(pv, &pvc)
        || pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| r.uid.is_none())
    {
        let spec = bound_pv.spec.get_or_insert_with(Default::default);
        spec.claim_ref = Some(core::reference_to(&pvc));
        let ann = bound_pv
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        ann.insert("pv.kubernetes.io/bound-by-controller".into(), "yes".into());
        bound_pv = pv_api.replace(&bound_pv).await?;
    }
    bound_pv.status.get_or_insert_with(Default::default).phase = Some("Bound".into());
    pv_api.replace_status(&bound_pv).await?;
    // 2. The claim points at the volume.
    let mut claim = (*pvc).clone();
    let pv_name = pv.name_any();
    if claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()) != Some(pv_name.as_str()) {
        claim.spec.get_or_insert_with(Default::default).volume_name = Some(pv_name.clone());
        let ann = claim
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        ann.insert("pv.kubernetes.io/bind-completed".into(), "yes".into());
        ann.insert("pv.kubernetes.io/bound-by-controller".into(), "yes".into());
        claim = pvc_api.replace(&claim).await?;
    }
    let status = claim.status.get_or_insert_with(Default::default);
    status.phase = Some("Bound".into());
    status.capacity = pv.spec.as_ref().and_then(|s| s.capacity.clone());
    status.access_modes = pv.spec.as_ref().and_then(|s| s.access_modes.clone());
    pvc_api.replace_status(&claim).await?;
    tracing::info!(claim = %key, volume = %pv_name, "bound");
    Ok(None)
}

/// Acts on a provisioning decision for a claim no volume fits.
async fn provision_claim(
    pvc: &PersistentVolumeClaim,
    decision: provision::Provision,
    ctx: &Ctx,
) -> Result<Option<Duration>, niwa_client::Error> {
    use provision::Provision;
    let (kind, reason, message) = match decision {
        Provision::NoClass => (
            "Warning",
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        ),
        Provision::ClassNotFound(c) => (
            "Warning",
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io \"{c}\" not found"),
        ),
        Provision::WaitForFirstConsumer => (
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        ),
        Provision::Failed(m) => ("Warning", "ProvisioningFailed", m),
        Provision::External(p) => {
            annotate_provisioner(pvc, &p, ctx).await?;
            (
                "Normal",
                "ExternalProvisioning",
                format!(
                    "Waiting for a volume to be created either by the external provisioner '{p}' \
                     or manually by the system administrator. If volume creation is delayed, \
                     please verify that the provisioner is running and correctly registered."
                ),
            )
        }
        Provision::Create(pv) => {
            annotate_provisioner(pvc, provision::PROVISIONER, ctx).await?;
            let name = pv.name_any();
            match ctx
                .shared
                .client
                .cluster::<PersistentVolume>()
                .create(&pv)
                .await
            {
                Ok(_) => {}
                // Made by an earlier pass whose binding did not finish: the binder takes it.
                Err(e) if e.is_already_exists() => return Ok(None),
                Err(e) => return Err(e),
            }
            tracing::info!(claim = %pvc.object_ref(), volume = %name, "provisioned");
            (
                "Normal",
                "ProvisioningSucceeded",
                format!("Successfully provisioned volume {name}"),
            )
        }
    };
    ctx.shared
        .events
        .publish(pvc.object_reference(), kind, reason, message);
    Ok(None)
}

/// Records on the claim which provisioner is expected to make its volume (both spellings of
/// the annotation, as the binder does).
async fn annotate_provisioner(
    pvc: &PersistentVolumeClaim,
    provisioner: &str,
    ctx: &Ctx,
) -> Result<(), niwa_client::Error> {
    let ann = pvc.metadata.annotations.clone().unwrap_or_default();
    if ann.get(provision::STORAGE_PROVISIONER).map(String::as_str) == Some(provisioner) {
        return Ok(());
    }
    let (key, beta) = (
        provision::STORAGE_PROVISIONER,
        provision::BETA_STORAGE_PROVISIONER,
    );
    let patch =
        serde_json::json!({"metadata": {"annotations": {key: provisioner, beta: provisioner}}});
    let ns = pvc.metadata.namespace.as_deref().unwrap_or_default();
    ctx.shared
        .client
        .namespaced::<PersistentVolumeClaim>(ns)
        .patch(&pvc.name_any(), &niwa_client::Patch::Merge(patch))
        .await?;
    Ok(())
}
