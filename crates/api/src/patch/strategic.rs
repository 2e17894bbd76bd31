//! Strategic merge patch (`application/strategic-merge-patch+json`), as apimachinery's
//! `strategicpatch.StrategicMergePatch` applies it: objects merge key by key, `null` deletes,
//! lists merge by the field's patch merge key (or as a set, or are replaced — see [`super::schema`]),
//! and the directives `$patch` (`replace`, `delete`, `merge`), `$retainKeys`,
//! `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured.

use serde_json::{Map, Value};

use super::schema::{self, ListKind, Type};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("unknown patch type: {0}")]
    UnknownDirective(String),
    #[error("map: {0} does not contain declared merge key: {1}")]
    MissingMergeKey(String, String),
    #[error("invalid patch: {0}")]
    Invalid(String),
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to `original` (an object of the kind whose root type is `root`).
pub fn apply(original: &mut Value, patch: &Value, root: Type) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    if !original.is_object() {
        *original = Value::Object(Map::new());
    }
    let Value::Object(target) = original else {
        return Ok(());
    };
    if merge_map(target, patch, Some(root))? == Outcome::Delete {
        target.clear();
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Keep,
    Delete,
}

fn is_directive(k: &str) -> bool {
    k == PATCH
        || k == RETAIN_KEYS
        || k.starts_with(SET_ORDER)
        || k.starts_with(DELETE_FROM_PRIMITIVE)
}

/// A value with every directive removed (what a new subtree looks like once stored).
pub fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| e.get(PATCH).is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<Type>,
) -> Result<Outcome, PatchError> {
    match patch.get(PATCH).and_then(Value::as_str) {
        Some("replace") => {
            *target = match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return Ok(Outcome::Keep);
        }
        Some("delete") => return Ok(Outcome::Delete),
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::UnknownDirective(other.into())),
    }
    // Lists whose elements must be removed by value.
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix(DELETE_FROM_PRIMITIVE) {
            let remove = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(list) {
                items.retain(|i| !remove.contains(i));
            }
        }
    }
    for (k, v) in patch {
        if is_directive(k) {
            continue;
        }
        let (list, child, _) = schema::lookup(ty, k);
        if v.is_null() {
            target.remove(k);
            continue;
        }
        match (target.get_mut(k), v) {
            (Some(Value::Object(t)), Value::Object(p)) => {
                if merge_map(t, p, child)? == Outcome::Delete {
                    target.remove(k);
                }
            }
            (Some(Value::Array(t)), Value::Array(p)) => merge_list(t, p, list, child)?,
            (_, Value::Object(p)) if p.get(PATCH).and_then(Value::as_str) == Some("delete") => {
                target.remove(k);
            }
            (_, new) => {
                target.insert(k.clone(), strip_directives(new));
            }
        }
    }
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix(SET_ORDER)
            && let Some(order) = v.as_array()
        {
            let (kind, _, _) = schema::lookup(ty, list);
            if let Some(Value::Array(items)) = target.get_mut(list) {
                reorder(items, order, kind);
            }
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| PatchError::Invalid("$retainKeys must be a list of strings".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Outcome::Keep)
}

fn key_of<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key).filter(|v| !v.is_null())
}

fn merge_list(
    target: &mut Vec<Value>,
    patch: &[Value],
    kind: ListKind,
    child: Option<Type>,
) -> Result<(), PatchError> {
    // `{"$patch": "replace"}` as an element replaces the whole list with the other elements.
    let replace = patch
        .iter()
        .any(|e| e.get(PATCH).and_then(Value::as_str) == Some("replace"));
    if replace {
        *target = patch
            .iter()
            .filter(|e| e.get(PATCH).is_none())
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    match kind {
        ListKind::Atomic => {
            *target = patch.iter().map(strip_directives).collect();
        }
        ListKind::Set => {
            for item in patch {
                if !target.contains(item) {
                    target.push(item.clone());
                }
            }
        }
        ListKind::Map(key) => {
            for item in patch {
                let Value::Object(fields) = item else {
                    // A scalar in a keyed list: treat the list as replaced, as Go does for
                    // mismatched types.
                    *target = patch.iter().map(strip_directives).collect();
                    return Ok(());
                };
                let Some(id) = key_of(item, key) else {
                    return Err(PatchError::MissingMergeKey(item.to_string(), key.into()));
                };
                let pos = target.iter().position(|t| key_of(t, key) == Some(id));
                match fields.get(PATCH).and_then(Value::as_str) {
                    Some("delete") => {
                        target.retain(|t| key_of(t, key) != Some(id));
                    }
                    // Element-level `replace` replaced the whole list above.
                    Some("replace") => {}
                    Some("merge") | None => match pos {
                        Some(i) => {
                            if let Value::Object(t) = &mut target[i]
                                && merge_map(t, fields, child)? == Outcome::Delete
                            {
                                target.remove(i);
                            }
                        }
                        None => target.push(strip_directives(item)),
                    },
                    Some(other) => return Err(PatchError::UnknownDirective(other.into())),
                }
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: elements named in `order` come first, in that order; the rest keep their
/// relative order after them.
fn reorder(items: &mut Vec<Value>, order: &[Value], kind: ListKind) {
    let rank = |item: &Value| -> Option<usize> {
        order.iter().position(|o| match kind {
            ListKind::Map(key) => key_of(o, key).is_some() && key_of(o, key) == key_of(item, key),
            _ => o == item,
        })
    };
    let mut ranked: Vec<(usize, usize, Value)> = items
        .drain(..)
        .enumerate()
        .map(|(i, v)| (rank(&v).unwrap_or(usize::MAX), i, v))
        .collect();
    ranked.sort_by_key(|(r, i, _)| (*r, *i));
    items.extend(ranked.into_iter().map(|(_, _, v)| v));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::root;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"metadata": {"name": "d", "labels": {"a": "1"}, "finalizers": ["x/a"]},
            "spec": {"replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"spec": {"containers": [
                    {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "envoy"}]}}}})
    }

    #[test]
    fn containers_merge_by_name() {
        let mut d = deploy();
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]},
            {"name": "new", "image": "busybox"}]}}}});
        apply(&mut d, &patch, root("apps", "Deployment")).expect("patch");
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "nginx:2");
        assert_eq!(
            cs[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(cs[1]["name"], "sidecar");
        assert_eq!(cs[2]["name"], "new");
    }

    #[test]
    fn directives() {
        let ty = root("apps", "Deployment");
        let mut d = deploy();
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}]}}}});
        apply(&mut d, &patch, ty).expect("delete element");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );

        let mut d = deploy();
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "x"}, {"$patch": "replace"}]}}}});
        apply(&mut d, &patch, ty).expect("replace list");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "x"}])
        );

        let mut d = deploy();
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        apply(&mut d, &patch, ty).expect("retain keys");
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));

        let mut d = deploy();
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "b": "2"}}});
        apply(&mut d, &patch, ty).expect("replace map");
        assert_eq!(d["metadata"]["labels"], json!({"b": "2"}));

        let mut d = deploy();
        let patch = json!({"metadata": {"finalizers": ["x/b"],
            "$deleteFromPrimitiveList/finalizers": ["x/a"]}});
        apply(&mut d, &patch, ty).expect("primitive list");
        assert_eq!(d["metadata"]["finalizers"], json!(["x/b"]));

        let mut d = deploy();
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
            "containers": [{"name": "web", "image": "nginx:3"}]}}}});
        apply(&mut d, &patch, ty).expect("order");
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, vec!["sidecar", "web"]);

        let mut d = deploy();
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(matches!(
            apply(&mut d, &bad, ty),
            Err(PatchError::MissingMergeKey(..))
        ));
        let mut d = deploy();
        apply(
            &mut d,
            &json!({"spec": {"replicas": null, "paused": true}}),
            ty,
        )
        .expect("null");
        assert!(d["spec"].get("replicas").is_none());
        assert_eq!(d["spec"]["paused"], true);
    }
}
