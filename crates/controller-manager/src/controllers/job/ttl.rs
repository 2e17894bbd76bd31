//! TTL-after-finished controller: deletes a finished Job (and, through garbage collection, its
//! pods) `ttlSecondsAfterFinished` after it completed or failed.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, DeleteParams, Propagation, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::core::ttl_remaining;
use crate::controllers::Shared;

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(shared.client.all::<Job>(), watcher::Config::default());
    let workers = shared.concurrency.ttl_after_finished;
    controller
        .run(
            reconcile,
            |_, _, _| Action::requeue_with_backoff(),
            shared,
            workers,
            shutdown,
        )
        .await;
}

async fn reconcile(job: Arc<Job>, shared: Arc<Shared>) -> Result<Action, niwa_client::Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match ttl_remaining(&job, shared.clock.now()) {
        None => Ok(Action::await_change()),
        Some(d) if !d.is_zero() => Ok(Action::requeue(d)),
        Some(_) => {
            let api: Api<Job> = shared
                .client
                .namespaced(&job.namespace().unwrap_or_default());
            let mut dp = DeleteParams::default().propagation(Propagation::Foreground);
            if let Some(uid) = job.uid() {
                dp = dp.precondition_uid(&uid);
            }
            match api.delete(&job.name_any(), &dp).await {
                Ok(_) => {
                    tracing::info!(job = %job.object_ref(), "deleted finished job (ttlSecondsAfterFinished)");
                    Ok(Action::await_change())
                }
                Err(e) if e.is_not_found() || e.is_conflict() => Ok(Action::await_change()),
                Err(e) => Err(e),
            }
        }
    }
}
