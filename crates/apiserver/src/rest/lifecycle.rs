//! NamespaceLifecycle admission: creating in a namespace needs the namespace to exist and not be
//! terminating.
//!
//! Answered from the namespaces' watch cache, as Kubernetes' plugin answers from its informer's
//! lister, so that a create costs one store round trip (its transaction) instead of two. The
//! store is asked only when the cache cannot answer: it says the namespace is missing (it may
//! have been created a moment ago, and the cache not have seen it yet) or it is not ready.
//!
//! Read-your-writes for deletions: Kubernetes forces a live lookup of a namespace it has just
//! seen deleted (`forceLiveLookupCache`), because its informer may still show it active. Here a
//! namespace deletion through this apiserver records its revision (the fence), and the cache
//! answers only once it has caught up with the fence; until then (bounded) the store answers. A
//! create that follows a namespace deletion is thus rejected even if the cache lags.

use std::sync::atomic::Ordering;
use std::time::Duration;

use niwa_api::{ApiError, Reason, ResourceInfo};

use super::{Rest, resolve};
use crate::object;

/// How long a create waits for the namespaces' cache to reach the fence before asking the store.
const FENCE_WAIT: Duration = Duration::from_millis(500);

/// What the namespaces' cache says about a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cached {
    Open,
    Terminating,
    /// Missing, or the cache is not ready or behind the fence: only the store can tell.
    Unknown,
}

impl Rest {
    /// Creating in a namespace needs the namespace to exist and not be terminating.
    pub(super) async fn check_namespace_open(
        &self,
        info: &ResourceInfo,
        name: &str,
        namespace: &str,
    ) -> Result<(), ApiError> {
        let namespaces = resolve("", "v1", "namespaces")?;
        let key = namespaces.store_key("", namespace);
        let terminating = match self.cached_namespace(namespaces, &key).await {
            Cached::Open => false,
            Cached::Terminating => true,
            Cached::Unknown => match self.storage.get(&key, 0).await? {
                None => return Err(ApiError::not_found(namespaces, namespace)),
                Some(ns) => object::is_deleting(&ns.object),
            },
        };
        if terminating {
            return Err(namespace_terminating(info, name, namespace));
        }
        Ok(())
    }

    async fn cached_namespace(&self, namespaces: &'static ResourceInfo, key: &str) -> Cached {
        let Ok(cache) = self.caches.get(namespaces).await else {
            return Cached::Unknown;
        };
        let fence = self.namespace_fence.load(Ordering::Acquire);
        if cache.revision() < fence && !cache.wait_for(fence, FENCE_WAIT).await {
            return Cached::Unknown;
        }
        match cache.get(key) {
            Some(ns) if ns.deleting => Cached::Terminating,
            Some(_) => Cached::Open,
            None => Cached::Unknown,
        }
    }

    /// Records a namespace deletion (marking it terminating, or removing it) at `revision`.
    pub(super) fn fence_namespaces(&self, revision: i64) {
        self.namespace_fence.fetch_max(revision, Ordering::AcqRel);
    }
}

/// NamespaceLifecycle's refusal: `pods "x" is forbidden: unable to create new content in
/// namespace ns because it is being terminated`, with the `NamespaceTerminating` cause.
fn namespace_terminating(info: &ResourceInfo, name: &str, namespace: &str) -> ApiError {
    let resource = if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    };
    let mut err = ApiError::new(
        Reason::Forbidden,
        format!(
            "{resource} {name:?} is forbidden: unable to create new content in namespace \
             {namespace} because it is being terminated"
        ),
    );
    err.name = name.into();
    err.group = info.group.into();
    err.kind = info.plural.into();
    err.causes = vec![niwa_api::Cause {
        reason: "NamespaceTerminating".into(),
        message: format!("namespace {namespace} is being terminated"),
        field: "metadata.namespace".into(),
    }];
    err
}
