//! PATCH: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch applied to
//! the current object, then stored as an update with compare-and-swap, retried on concurrent
//! writes as Kubernetes does; and server-side apply (`apply-patch+yaml`), which creates the object
//! when missing and records field ownership (see `niwa_api::patch::managed`).

use niwa_api::patch::{managed, schema, strategic};
use niwa_api::{ApiError, Cause, Reason, ResourceInfo};
use serde_json::Value;

use super::Rest;
use super::write::{UpdateScope, WriteOptions};
use crate::object;

pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Conflicts retried before a patch gives up (Kubernetes retries patches internally too).
const PATCH_RETRIES: usize = 8;

impl Rest {
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        patch_type: &str,
        patch: &[u8],
        scope: UpdateScope,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let opts = WriteOptions::dry_run(dry_run);
        self.patch_with(info, namespace, name, patch_type, patch, scope, &opts)
            .await
    }

    /// PATCH with a field manager (recorded in managedFields; required for apply) and `force`.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_with(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        patch_type: &str,
        patch: &[u8],
        scope: UpdateScope,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let patch: Value = serde_json::from_slice(patch)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
        if patch_type == APPLY_PATCH {
            return self.apply(info, namespace, name, patch, scope, opts).await;
        }
        for _ in 0..PATCH_RETRIES {
            let current = self.get(info, namespace, name).await?;
            let mut next = current.clone();
            match patch_type {
                MERGE_PATCH => merge_patch(&mut next, &patch),
                JSON_PATCH => json_patch(&mut next, &patch)?,
                STRATEGIC_MERGE_PATCH => {
                    strategic::apply(&mut next, &patch, schema::root(info.group, info.kind))
                        .map_err(|e| ApiError::bad_request(e.to_string()))?;
                }
                other => {
                    return Err(ApiError::new(
                        Reason::UnsupportedMediaType,
                        format!(
                            "the body of the request was in an unknown format - accepted media \
                             types include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}, \
                             {STRATEGIC_MERGE_PATCH} (got {other:?})"
                        ),
                    ));
                }
            }
            // A patch that names a resourceVersion is a precondition; otherwise patch the latest.
            if object::str_field(&next, "resourceVersion").is_empty() {
                let rv = object::str_field(&current, "resourceVersion").to_string();
                object::meta_mut(&mut next).insert("resourceVersion".into(), Value::String(rv));
            }
            let pinned = patch["metadata"]["resourceVersion"].is_string();
            match self
                .update_with(info, namespace, name, next, scope, opts)
                .await
            {
                Err(e) if e.reason == Reason::Conflict && !pinned => continue,
                other => return other,
            }
        }
        Err(ApiError::stale(info, name))
    }

    /// Server-side apply: merges the applied configuration into the live object (creating it
    /// when missing), with field ownership and conflicts as Kubernetes has them.
    async fn apply(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
        mut applied: Value,
        scope: UpdateScope,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if opts.field_manager.is_empty() {
            return Err(ApiError::invalid_kind(
                "PatchOptions.meta.k8s.io",
                "",
                vec![Cause::required("fieldManager").with_detail("is required for apply patch")],
            ));
        }
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        let body_name = object::name(&applied);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        object::meta_mut(&mut applied).insert("name".into(), Value::String(name.into()));
        if info.namespaced && !namespace.is_empty() {
            object::meta_mut(&mut applied)
                .insert("namespace".into(), Value::String(namespace.into()));
        }
        let api_version = info.api_version();
        let time = object::now();
        let subresource = if scope == UpdateScope::Status {
            "status"
        } else {
            ""
        };
        let writer = managed::Writer {
            manager: &opts.field_manager,
            api_version: &api_version,
            time: &time,
            subresource,
        };
        let root = schema::root(info.group, info.kind);
        for _ in 0..PATCH_RETRIES {
            let current = match self.get(info, namespace, name).await {
                Ok(c) => Some(c),
                Err(e) if e.reason == Reason::NotFound && scope == UpdateScope::Main => None,
                Err(e) => return Err(e),
            };
            let merged = managed::apply(current.as_ref(), &applied, root, &writer, opts.force)
                .map_err(|conflicts| apply_conflict(info, name, &conflicts))?;
            let result = match current {
                None => {
                    self.create_inner(info, namespace, merged, opts, false)
                        .await
                }
                Some(current) => {
                    let mut merged = merged;
                    let rv = object::str_field(&current, "resourceVersion").to_string();
                    object::meta_mut(&mut merged)
                        .insert("resourceVersion".into(), Value::String(rv));
                    self.update_inner(info, namespace, name, merged, scope, opts, false)
                        .await
                }
            };
            match result {
                // Someone wrote in between (or created it first): apply again on the new state.
                Err(e) if matches!(e.reason, Reason::Conflict | Reason::AlreadyExists) => continue,
                other => return other,
            }
        }
        Err(ApiError::stale(info, name))
    }
}

/// The 409 an apply gets when it would change fields other managers own.
fn apply_conflict(info: &ResourceInfo, name: &str, conflicts: &[managed::Conflict]) -> ApiError {
    let mut err = ApiError::new(Reason::Conflict, managed::conflict_message(conflicts));
    err.name = name.into();
    err.group = info.group.into();
    err.kind = info.plural.into();
    err.causes = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {:?} using {}", c.manager, c.api_version),
            field: c.path.clone(),
        })
        .collect();
    err
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(target_map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn pointer_parts(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_and_last<'a>(
    doc: &'a mut Value,
    path: &str,
) -> Result<(&'a mut Value, String), ApiError> {
    let mut parts = pointer_parts(path)?;
    let last = parts
        .pop()
        .ok_or_else(|| ApiError::bad_request("a JSON patch cannot replace the whole object"))?;
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(&p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("path {path:?} does not exist")))?;
    }
    Ok((cur, last))
}

/// RFC 6902 operations: add, remove, replace, move, copy, test.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array of operations"))?;
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        match op["op"].as_str().unwrap_or_default() {
            "add" => add(doc, path, op["value"].clone())?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, op["value"].clone())?;
            }
            "move" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = doc.pointer(from).cloned().ok_or_else(|| {
                    ApiError::bad_request(format!("path {from:?} does not exist"))
                })?;
                add(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(ApiError::new(
                        Reason::Invalid,
                        format!("the test operation failed at {path:?}"),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| ApiError::bad_request(format!("invalid index in {path:?}")))?
            };
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(ApiError::bad_request(format!(
            "path {path:?} does not exist"
        ))),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let (parent, last) = parent_and_last(doc, path)?;
    let missing = || ApiError::bad_request(format!("path {path:?} does not exist"));
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"labels": {}}});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels/app", "value": "web"},
            {"op": "add", "path": "/spec/containers/-", "value": {"name": "b"}},
            {"op": "replace", "path": "/spec/containers/0/name", "value": "c"},
            {"op": "test", "path": "/metadata/labels/app", "value": "web"},
            {"op": "remove", "path": "/spec/containers/1"}
        ]);
        assert!(json_patch(&mut doc, &patch).is_ok());
        assert_eq!(
            doc,
            json!({"spec": {"containers": [{"name": "c"}]}, "metadata": {"labels": {"app": "web"}}})
        );
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
