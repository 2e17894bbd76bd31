//! Creating and deleting a controller's pods (Kubernetes' `PodControl` plus `slowStartBatch`):
//! creations go in batches of 1, 2, 4, … and stop at the first failed batch (a quota or admission
//! error then costs one call, not hundreds); deletions run concurrently. Each success and failure is
//! recorded as an Event on the controller object, with Kubernetes' reasons and messages.

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use niwa_client::{Api, DeleteParams};

use crate::events::EventSink;

/// Deletions in flight at once.
const DELETE_CONCURRENCY: usize = 64;

/// Create `pods` (slow start). Returns the names of the created pods and the first error.
pub async fn create_pods(
    api: &Api<Pod>,
    pods: Vec<Pod>,
    regarding: &ObjectReference,
    events: &EventSink,
) -> (Vec<String>, Option<niwa_client::Error>) {
    let mut created = Vec::with_capacity(pods.len());
    let mut batch = 1usize;
    let mut rest = pods.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<Pod> = rest.by_ref().take(batch).collect();
        let results = futures::future::join_all(chunk.iter().map(|p| api.create(p))).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(p) => {
                    let name = p.metadata.name.unwrap_or_default();
                    events.publish(
                        regarding.clone(),
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    );
                    created.push(name);
                }
                Err(err) => {
                    events.publish(
                        regarding.clone(),
                        "Warning",
                        "FailedCreate",
                        format!("Error creating: {err}"),
                    );
                    first_err.get_or_insert(err);
                }
            }
        }
        if first_err.is_some() {
            return (created, first_err);
        }
        batch *= 2;
    }
    (created, None)
}

/// Delete pods by name (NotFound counts as deleted). Returns the deleted names and the first error.
pub async fn delete_pods(
    api: &Api<Pod>,
    names: Vec<String>,
    regarding: &ObjectReference,
    events: &EventSink,
) -> (Vec<String>, Option<niwa_client::Error>) {
    let results: Vec<(String, Result<(), niwa_client::Error>)> = stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                let r = match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e),
                };
                (name, r)
            }
        })
        .buffer_unordered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut first_err = None;
    for (name, r) in results {
        match r {
            Ok(()) => {
                events.publish(
                    regarding.clone(),
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                );
                deleted.push(name);
            }
            Err(err) => {
                events.publish(
                    regarding.clone(),
                    "Warning",
                    "FailedDelete",
                    format!("Error deleting: {err}"),
                );
                first_err.get_or_insert(err);
            }
        }
    }
    (deleted, first_err)
}
