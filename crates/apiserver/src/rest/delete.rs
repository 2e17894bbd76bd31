//! Deletion: preconditions, propagation finalizers, graceful deletion of pods, and finalizers that
//! keep an object (with a deletionTimestamp) until its controllers let it go.

use niwa_api::{ApiError, ResourceInfo};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Rest, SYSTEM_NAMESPACES};
use crate::object::{self, meta_mut};
use crate::storage::StorageError;

/// The subset of `metav1.DeleteOptions` niwa honours.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub preconditions: Option<Preconditions>,
    #[serde(default)]
    pub dry_run: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    pub fn from_json(bytes: &[u8]) -> Result<DeleteOptions, ApiError> {
        if bytes.is_empty() {
            return Ok(DeleteOptions::default());
        }
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
    }
}

const ORPHAN_FINALIZER: &str = "orphan";
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Pods default to 30 s of graceful termination (`terminationGracePeriodSeconds`).
const DEFAULT_POD_GRACE: i64 = 30;

impl Rest {
    /// Deletes an object, or marks it for deletion; returns the object as it ended up.
    pub async fn delete(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        opts: DeleteOptions,
    ) -> Result<Value, ApiError> {
        let result = self.delete_object(info, namespace, name, opts).await;
        if info.group.is_empty()
            && info.kind == "Namespace"
            && let Ok(obj) = &result
            && let Ok(Some(rev)) = object::resource_version(obj)
        {
            // Creates in it are refused from now on, whatever the cache has seen.
            self.fence_namespaces(rev);
        }
        result
    }

    async fn delete_object(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        opts: DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = Self::key(info, namespace, name)?;
        if info.group.is_empty() && info.kind == "Namespace" && SYSTEM_NAMESPACES.contains(&name) {
            let mut err = ApiError::new(
                niwa_api::Reason::Forbidden,
                format!("namespaces {name:?} is forbidden: this namespace may not be deleted"),
            );
            err.name = name.into();
            err.kind = info.plural.into();
            return Err(err);
        }
        // Retry a few times on a concurrent write between our read and our compare-and-swap.
        for _ in 0..8 {
            let Some(current) = self.storage.get(&key, 0).await? else {
                return Err(ApiError::not_found(info, name));
            };
            check_preconditions(info, name, &current.object, current.revision, &opts)?;
            let mut obj = current.object.clone();
            let mut finalizers = object::finalizers(&obj);
            let policy = opts.propagation_policy.as_deref().unwrap_or("Background");
            match policy {
                "Orphan" if !finalizers.iter().any(|f| f == ORPHAN_FINALIZER) => {
                    finalizers.push(ORPHAN_FINALIZER.into());
                }
                "Foreground" if !finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) => {
                    finalizers.push(FOREGROUND_FINALIZER.into());
                }
                "Orphan" | "Foreground" | "Background" => {}
                other => {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        vec![niwa_api::Cause::unsupported(
                            "propagationPolicy",
                            other,
                            &["Foreground", "Background", "Orphan"],
                        )],
                    ));
                }
            }
            let grace = pod_grace_period(info, &obj, opts.grace_period_seconds);
            let keep =
                !finalizers.is_empty() || grace > 0 || namespace_needs_finalizing(info, &obj);
            if opts.dry_run.iter().any(|d| d == "All") {
                return Ok(obj);
            }
            if !keep {
                return match self
                    .commit_delete(info, &key, name, &current.object, current.revision)
                    .await
                {
                    Ok(rev) => {
                        object::set_resource_version(&mut obj, rev);
                        Ok(obj)
                    }
                    Err(e) if e.reason == niwa_api::Reason::Conflict => continue,
                    Err(e) => Err(e),
                };
            }
            let result = {
                let md = meta_mut(&mut obj);
                if md.get("deletionTimestamp").is_none_or(Value::is_null) {
                    md.insert("deletionTimestamp".into(), json!(object::now_plus(grace)));
                    md.insert("deletionGracePeriodSeconds".into(), json!(grace));
                } else if grace
                    < md.get("deletionGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        .unwrap_or(i64::MAX)
                {
                    // A second delete may shorten the grace period, never lengthen it.
                    md.insert("deletionTimestamp".into(), json!(object::now_plus(grace)));
                    md.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                if !finalizers.is_empty() {
                    md.insert("finalizers".into(), json!(finalizers));
                }
                if info.kind == "Namespace" && info.group.is_empty() {
                    obj["status"] = json!({"phase": "Terminating"});
                }
                self.storage.update(&key, &obj, current.revision).await
            };
            match result {
                Ok(rev) => {
                    object::set_resource_version(&mut obj, rev);
                    return Ok(obj);
                }
                Err(StorageError::Conflict) => continue,
                Err(StorageError::NotFound) => return Err(ApiError::not_found(info, name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::stale(info, name))
    }
}

fn check_preconditions(
    info: &ResourceInfo,
    name: &str,
    obj: &Value,
    revision: i64,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let Some(pre) = &opts.preconditions else {
        return Ok(());
    };
    if let Some(uid) = &pre.uid
        && uid != object::uid(obj)
    {
        return Err(ApiError::conflict(
            info,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                object::uid(obj)
            ),
        ));
    }
    if let Some(rv) = &pre.resource_version
        && rv != &revision.to_string()
    {
        return Err(ApiError::conflict(
            info,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
            ),
        ));
    }
    Ok(())
}

/// The grace period a delete gets: only pods bound to a node that is still running them wait for the
/// kubelet; everything else goes at once.
fn pod_grace_period(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> i64 {
    if info.kind != "Pod" || !info.group.is_empty() {
        return 0;
    }
    let scheduled = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || terminal {
        return 0;
    }
    requested
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(DEFAULT_POD_GRACE)
        .max(0)
}

/// A namespace with `spec.finalizers` is emptied by the namespace controller before it goes.
fn namespace_needs_finalizing(info: &ResourceInfo, obj: &Value) -> bool {
    info.kind == "Namespace"
        && info.group.is_empty()
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
}
