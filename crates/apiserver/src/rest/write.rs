//! Create, update and status update.

use niwa_api::patch::{managed, schema};
use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};

use super::{Rest, check_body};
use crate::kinds;
use crate::object::{self, meta_mut};

/// Options of a write beyond its body: `dryRun`, the `fieldManager` whose ownership of fields is
/// recorded in `metadata.managedFields` (none recorded when empty), and `force` for applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub force: bool,
}

impl WriteOptions {
    pub fn dry_run(dry_run: bool) -> WriteOptions {
        WriteOptions {
            dry_run,
            ..Default::default()
        }
    }
}

/// Records the write of `opts.field_manager` (if any) in `obj`'s managedFields.
pub(super) fn track(
    info: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
    opts: &WriteOptions,
    subresource: &str,
) {
    if opts.field_manager.is_empty() {
        return;
    }
    let time = object::now();
    let api_version = info.api_version();
    let writer = managed::Writer {
        manager: &opts.field_manager,
        api_version: &api_version,
        time: &time,
        subresource,
    };
    managed::track_update(old, obj, schema::root(info.group, info.kind), &writer);
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: status changes are ignored when a status subresource exists.
    Main,
    /// The `status` subresource: only status changes are kept.
    Status,
    /// The `finalize` subresource of Namespaces: only `spec.finalizers` changes are kept.
    Finalize,
}

impl Rest {
    pub async fn create(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.create_with(info, namespace, body, &WriteOptions::dry_run(dry_run))
            .await
    }

    /// Create with a field manager (recorded in managedFields) and dry-run option.
    pub async fn create_with(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.create_inner(info, namespace, body, opts, true).await
    }

    /// `track`: whether this write's field manager is recorded here (applies record their own).
    pub(super) async fn create_inner(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        mut body: Value,
        opts: &WriteOptions,
        track_fields: bool,
    ) -> Result<Value, ApiError> {
        let dry_run = opts.dry_run;
        check_body(info, &mut body)?;
        let md = meta_mut(&mut body);
        let body_ns = md
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if info.namespaced {
            if !body_ns.is_empty() && !namespace.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let ns = if namespace.is_empty() {
                body_ns
            } else {
                namespace.to_string()
            };
            md.insert("namespace".into(), json!(ns));
        } else {
            md.remove("namespace");
        }
        let name = md
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let generate = md
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() && !generate.is_empty() {
            md.insert("name".into(), json!(object::generate_name(&generate)));
        }
        // Server-set fields: whatever the client sent is replaced.
        md.insert("uid".into(), json!(object::new_uid()));
        md.insert("creationTimestamp".into(), json!(object::now()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "generation",
        ] {
            md.remove(k);
        }
        // Mutating admission that reads other objects (DefaultStorageClass), then the kind's
        // defaults, initial status and validation (every bad field at once).
        self.admit_create_plugins(info.group, info.kind, &mut body)
            .await?;
        let mut body = niwa_api::kinds::admit_create(info, body)?;
        if kinds::tracks_generation(&body) {
            meta_mut(&mut body).insert("generation".into(), json!(1));
        }
        if track_fields {
            track(info, None, &mut body, opts, "");
        }
        let name = object::name(&body).to_string();
        if info.namespaced {
            self.check_namespace_open(info, &name, object::namespace(&body))
                .await?;
        }
        let key = Self::key(info, object::namespace(&body), &name)?;
        self.commit_create(info, &key, body, dry_run).await
    }

    pub async fn update(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        body: Value,
        scope: UpdateScope,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.update_with(
            info,
            namespace,
            name,
            body,
            scope,
            &WriteOptions::dry_run(dry_run),
        )
        .await
    }

    /// Update with a field manager (recorded in managedFields) and dry-run option.
    pub async fn update_with(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        body: Value,
        scope: UpdateScope,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        self.update_inner(info, namespace, name, body, scope, opts, true)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn update_inner(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        mut body: Value,
        scope: UpdateScope,
        opts: &WriteOptions,
        track_fields: bool,
    ) -> Result<Value, ApiError> {
        let dry_run = opts.dry_run;
        check_body(info, &mut body)?;
        let body_name = object::name(&body);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = object::namespace(&body);
        if info.namespaced && !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let wanted_rv = object::resource_version(&body).map_err(ApiError::bad_request)?;
        let key = Self::key(info, namespace, name)?;
        let Some(current) = self.storage.get(&key, 0).await? else {
            return Err(ApiError::not_found(info, name));
        };
        if let Some(rv) = wanted_rv
            && rv != current.revision
        {
            return Err(ApiError::stale(info, name));
        }
        let merged = merge_update(info, &current.object, body, scope);
        let mut updated = match scope {
            UpdateScope::Main => niwa_api::kinds::admit_update(info, merged, &current.object)?,
            UpdateScope::Status | UpdateScope::Finalize => {
                niwa_api::kinds::admit_status_update(info, merged, &current.object)?
            }
        };
        set_generation(&current.object, &mut updated);
        if track_fields {
            let sub = match scope {
                UpdateScope::Main => "",
                UpdateScope::Status => "status",
                UpdateScope::Finalize => "finalize",
            };
            track(info, Some(&current.object), &mut updated, opts, sub);
        }
        self.commit_update(
            info,
            &key,
            &current.object,
            current.revision,
            updated,
            dry_run,
        )
        .await
    }
}

/// Builds the object to store from the current one and the client's body: server-set metadata is
/// kept, status and spec are separated as the scope says, and `generation` follows spec changes.
fn merge_update(info: &ResourceInfo, current: &Value, body: Value, scope: UpdateScope) -> Value {
    let separated = kinds::has_status_subresource(info);
    let mut updated = match scope {
        UpdateScope::Status => {
            let mut next = current.clone();
            next["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            next
        }
        UpdateScope::Finalize => {
            let mut next = current.clone();
            let finalizers = body["spec"]["finalizers"].clone();
            if !next["spec"].is_object() {
                next["spec"] = json!({});
            }
            next["spec"]["finalizers"] = if finalizers.is_null() {
                json!([])
            } else {
                finalizers
            };
            next
        }
        UpdateScope::Main => {
            let mut next = body;
            if separated {
                match current.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(obj) = next.as_object_mut() {
                            obj.remove("status");
                        }
                    }
                }
            }
            next
        }
    };
    let old_md = &current["metadata"];
    let md = meta_mut(&mut updated);
    // Ownership records continue unless the body replaces them.
    if md.get("managedFields").is_none_or(Value::is_null)
        && let Some(mf) = old_md.get("managedFields").filter(|v| !v.is_null())
    {
        md.insert("managedFields".into(), mf.clone());
    }
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
        "generation",
    ] {
        match old_md.get(k) {
            Some(v) if !v.is_null() => {
                md.insert(k.into(), v.clone());
            }
            _ => {
                md.remove(k);
            }
        }
    }
    md.remove("resourceVersion");
    if updated.get("status").is_some_and(Value::is_null)
        && let Some(obj) = updated.as_object_mut()
    {
        obj.remove("status");
    }
    updated
}

/// `metadata.generation` follows spec changes (compared after defaulting, so a body that omits
/// defaulted fields is not a change).
fn set_generation(current: &Value, updated: &mut Value) {
    if !kinds::tracks_generation(updated) {
        return;
    }
    let old_gen = current["metadata"]["generation"].as_i64().unwrap_or(0);
    let changed = object::spec_part(current) != object::spec_part(updated);
    let generation = if changed || old_gen == 0 {
        old_gen + 1
    } else {
        old_gen
    };
    meta_mut(updated).insert("generation".into(), json!(generation));
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::Registry;

    #[test]
    fn main_updates_keep_status_and_bump_generation_on_spec_change() {
        let Some(deploy) = Registry.resolve("deployments") else {
            panic!("deployments missing from the registry");
        };
        let current = json!({"metadata": {"name": "d", "uid": "u1", "generation": 1,
            "creationTimestamp": "t"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let body = json!({"metadata": {"name": "d", "uid": "forged", "labels": {"a": "b"}},
            "spec": {"replicas": 3}, "status": {"replicas": 99}});
        let mut next = merge_update(deploy, &current, body, UpdateScope::Main);
        set_generation(&current, &mut next);
        assert_eq!(next["metadata"]["uid"], "u1");
        assert_eq!(next["metadata"]["generation"], 2);
        assert_eq!(next["status"]["replicas"], 1);
        assert_eq!(next["metadata"]["labels"]["a"], "b");
        let same_spec =
            json!({"metadata": {"name": "d", "labels": {"x": "y"}}, "spec": {"replicas": 1}});
        let mut next = merge_update(deploy, &current, same_spec, UpdateScope::Main);
        set_generation(&current, &mut next);
        assert_eq!(next["metadata"]["generation"], 1);
        let status = json!({"spec": {"replicas": 7}, "status": {"replicas": 2}});
        let next = merge_update(deploy, &current, status, UpdateScope::Status);
        assert_eq!(next["spec"]["replicas"], 1);
        assert_eq!(next["status"]["replicas"], 2);
    }
}
