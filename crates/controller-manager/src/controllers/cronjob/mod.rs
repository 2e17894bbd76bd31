//! CronJob controller: creates Jobs on a cron schedule (macros, timeZone), with concurrencyPolicy,
//! suspend, startingDeadlineSeconds and history limits. Decisions in [`core`], schedules in
//! [`schedule`].
//!
//! The shell: a [`niwa_client::Controller`] over CronJobs that owns Jobs; each pass performs
//! [`core::sync`]'s steps and requeues itself for the next scheduled time.

pub mod core;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use niwa_client::runtime::watcher;
use niwa_client::{Action, Api, Controller, DeleteParams, Propagation, ResourceExt, Store};
use tokio_util::sync::CancellationToken;

use self::core::Step;
use super::Shared;
use crate::util::owner;

struct Ctx {
    shared: Arc<Shared>,
    jobs: Store<Job>,
}

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let controller = Controller::new(shared.client.all::<CronJob>(), watcher::Config::default())
        .owns(shared.client.all::<Job>(), watcher::Config::default());
    let Some(jobs) = controller.store_for::<Job>() else {
        tracing::error!("cronjob controller: no Job store");
        return;
    };
    let workers = shared.concurrency.cronjob;
    let ctx = Arc::new(Ctx { shared, jobs });
    controller
        .run(
            reconcile,
            |_, _, _| Action::requeue_with_backoff(),
            ctx,
            workers,
            shutdown,
        )
        .await;
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, niwa_client::Error> {
    let shared = &ctx.shared;
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs = ctx.jobs.filter(|j| {
        j.metadata.namespace.as_deref() == Some(ns.as_str())
            && owner::is_controlled_by(&j.metadata, &uid)
    });
    let refs: Vec<&Job> = jobs.iter().map(|j| j.as_ref()).collect();
    let plan = core::sync(&cj, &refs, shared.clock.now());
    let api: Api<Job> = shared.client.namespaced(&ns);
    let cj_api: Api<CronJob> = shared.client.namespaced(&ns);
    let regarding = cj.object_reference();
    let mut created_uids: BTreeMap<String, String> = BTreeMap::new();
    for step in plan.steps {
        match step {
            Step::DeleteJob(name) => {
                match api
                    .delete(
                        &name,
                        &DeleteParams::default().propagation(Propagation::Background),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Step::CreateJob(job) => match api.create(&job).await {
                Ok(j) => {
                    created_uids.insert(j.name_any(), j.metadata.uid.unwrap_or_default());
                }
                // Created by a previous pass whose status write was lost: the next pass lists it.
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    shared.events.publish(
                        regarding.clone(),
                        "Warning",
                        "FailedCreate",
                        format!("Error creating job: {e}"),
                    );
                    return Err(e);
                }
            },
            Step::UpdateStatus(mut st) => {
                for r in st.active.iter_mut().flatten() {
                    if r.uid.is_none() {
                        r.uid = r.name.as_ref().and_then(|n| created_uids.get(n).cloned());
                    }
                }
                let mut latest = (*cj).clone();
                latest.status = Some(st);
                match cj_api.replace_status(&latest).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => return Ok(Action::await_change()),
                    Err(e) => return Err(e),
                }
            }
            Step::Event {
                type_,
                reason,
                message,
            } => shared
                .events
                .publish(regarding.clone(), type_, reason, message),
        }
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}
