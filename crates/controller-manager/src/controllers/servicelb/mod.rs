//! Service LoadBalancer controller (Kubernetes' `service-lb-controller` with a built-in address
//! pool, as k3s' ServiceLB or MetalLB provide): LoadBalancer Services get an address of `--lb-pool`
//! (default `127.200.0.0/24`) in `status.loadBalancer.ingress`; niwa-proxy serves it. Released
//! when the Service is deleted or stops being a LoadBalancer. One worker plus a memory of
//! addresses written but not yet cached keeps addresses unique. Events as Kubernetes' service
//! controller records them (`EnsuringLoadBalancer`, `EnsuredLoadBalancer`, `DeletedLoadBalancer`).

pub mod core;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServiceStatus};
use niwa_client::runtime::watcher;
use niwa_client::{Action, Controller, ObjectRef, ResourceExt, Store};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::Shared;

struct Ctx {
    shared: Arc<Shared>,
    pool: core::Pool,
    services: Store<Service>,
    /// Service → pool offset written but maybe not yet in the cache.
    in_flight: Mutex<HashMap<ObjectRef, u32>>,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let pool = match core::Pool::new(&shared.settings.lb_pool) {
        Ok(p) => p,
        Err(err) => {
            tracing::error!(%err, "service-lb-controller: bad --lb-pool; not running");
            return;
        }
    };
    let controller = Controller::new(shared.client.all::<Service>(), watcher::Config::default());
    let ctx = Arc::new(Ctx {
        shared,
        pool,
        services: controller.store(),
        in_flight: Mutex::default(),
    });
    controller
        .run(
            reconcile,
            |_, _: &niwa_client::Error, _| Action::requeue_with_backoff(),
            ctx,
            1,
            shutdown,
        )
        .await;
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, niwa_client::Error> {
    let key = svc.object_ref();
    let mut in_flight = ctx.in_flight.lock().await;
    let services = ctx.services.state();
    in_flight.retain(|k, off| {
        services
            .iter()
            .any(|s| s.object_ref() == *k && ctx.pool.held(s) != Some(*off))
    });
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    for s in &services {
        let k = s.object_ref();
        if k == key {
            continue;
        }
        match in_flight.get(&k) {
            Some(off) => {
                taken.insert(*off);
            }
            None => taken.extend(ctx.pool.held(s)),
        }
    }
    let decision = ctx.pool.decide(&svc, &taken);
    let regarding = svc.object_reference();
    let api = ctx
        .shared
        .client
        .namespaced::<Service>(&key.namespace.clone().unwrap_or_default());
    let write = |status: Option<k8s_openapi::api::core::v1::LoadBalancerStatus>| {
        let mut updated = (*svc).clone();
        updated
            .status
            .get_or_insert_with(ServiceStatus::default)
            .load_balancer = status;
        updated
    };
    match decision {
        core::Decision::Nothing => Ok(Action::await_change()),
        core::Decision::Exhausted => {
            ctx.shared.events.publish(
                regarding,
                "Warning",
                "AllocationFailed",
                "Failed to allocate IP: no available IPs in the pool".into(),
            );
            Ok(Action::requeue(Duration::from_secs(30)))
        }
        core::Decision::Assign(ip) => {
            ctx.shared.events.publish(
                regarding.clone(),
                "Normal",
                "EnsuringLoadBalancer",
                "Ensuring load balancer".into(),
            );
            match api.replace_status(&write(Some(core::status_for(ip)))).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(Action::await_change()),
                Err(e) => return Err(e),
            }
            if let Some(off) = ctx.pool.held(&write(Some(core::status_for(ip)))) {
                in_flight.insert(key, off);
            }
            ctx.shared.events.publish(
                regarding,
                "Normal",
                "EnsuredLoadBalancer",
                format!("Ensured load balancer with IP {ip}"),
            );
            Ok(Action::await_change())
        }
        core::Decision::Clear => {
            match api.replace_status(&write(Some(Default::default()))).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(Action::await_change()),
                Err(e) => return Err(e),
            }
            ctx.shared.events.publish(
                regarding,
                "Normal",
                "DeletedLoadBalancer",
                "Deleted load balancer".into(),
            );
            Ok(Action::await_change())
        }
    }
}
