//! Field sets: the paths an object sets (walked with the kind's schema), reading and removing
//! a path, and the `FieldsV1` encoding of a set.

use super::*;

/// Fields no manager owns: identity, server-set metadata, and the kind itself.
const IGNORED_TOP: &[&str] = &["f:apiVersion", "f:kind"];
const IGNORED_META: &[&str] = &[
    "f:name",
    "f:namespace",
    "f:uid",
    "f:resourceVersion",
    "f:generation",
    "f:creationTimestamp",
    "f:deletionTimestamp",
    "f:deletionGracePeriodSeconds",
    "f:managedFields",
    "f:selfLink",
];

fn ignored(path: &Path) -> bool {
    match path.as_slice() {
        [first, ..] if IGNORED_TOP.contains(&first.as_str()) => true,
        [first, second, ..] if first == "f:metadata" => IGNORED_META.contains(&second.as_str()),
        _ => false,
    }
}

fn item_key(item: &Value, key: &str) -> Option<String> {
    let v = item.get(key).filter(|v| !v.is_null())?;
    let mut m = Map::new();
    m.insert(key.to_string(), v.clone());
    Some(format!("k:{}", Value::Object(m)))
}

/// The fields `obj` sets, as owned paths.
pub fn field_set(obj: &Value, root: Type) -> FieldSet {
    let mut out = FieldSet::new();
    walk(obj, Some(root), &mut Vec::new(), &mut out);
    out.retain(|p| !ignored(p));
    out
}

fn walk(v: &Value, ty: Option<Type>, prefix: &mut Path, out: &mut FieldSet) {
    let Value::Object(map) = v else {
        return;
    };
    for (k, child) in map {
        let (list, child_ty, _) = schema::lookup(ty, k);
        prefix.push(format!("f:{k}"));
        match child {
            Value::Object(m) if !m.is_empty() => walk(child, child_ty, prefix, out),
            Value::Array(items) => match list {
                ListKind::Map(key) if items.iter().all(|i| item_key(i, key).is_some()) => {
                    for item in items {
                        if let Some(id) = item_key(item, key) {
                            prefix.push(id);
                            out.insert(prefix.clone());
                            walk(item, child_ty, prefix, out);
                            prefix.pop();
                        }
                    }
                    if items.is_empty() {
                        out.insert(prefix.clone());
                    }
                }
                ListKind::Set => {
                    for item in items {
                        prefix.push(format!("v:{item}"));
                        out.insert(prefix.clone());
                        prefix.pop();
                    }
                    if items.is_empty() {
                        out.insert(prefix.clone());
                    }
                }
                _ => {
                    out.insert(prefix.clone());
                }
            },
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

/// The value at `path` in `obj`.
pub fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for elem in path {
        cur = if let Some(name) = elem.strip_prefix("f:") {
            cur.get(name)?
        } else if let Some(key) = elem.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(key).ok()?;
            cur.as_array()?
                .iter()
                .find(|item| want.iter().all(|(k, v)| item.get(k) == Some(v)))?
        } else if let Some(val) = elem.strip_prefix("v:") {
            let want: Value = serde_json::from_str(val).ok()?;
            cur.as_array()?.iter().find(|item| **item == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the field at `path` from `obj` (a no-op when absent).
pub(super) fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for elem in parents {
        let next = if let Some(name) = elem.strip_prefix("f:") {
            cur.get_mut(name)
        } else if let Some(key) = elem.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| want.iter().all(|(k, v)| item.get(k) == Some(v)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        if let (Ok(want), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(key),
            cur.as_array_mut(),
        ) {
            a.retain(|item| !want.iter().all(|(k, v)| item.get(k) == Some(v)));
        }
    } else if let Some(val) = last.strip_prefix("v:")
        && let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(val), cur.as_array_mut())
    {
        a.retain(|item| *item != want);
    }
}

/// `FieldsV1` JSON of a field set.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        insert_path(&mut root, path);
    }
    // A path that is owned and also has owned children is marked with ".".
    mark_owned(&mut root, set, &mut Vec::new());
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let entry = node
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(child) = entry {
        insert_path(child, rest);
    }
}

fn mark_owned(node: &mut Map<String, Value>, set: &FieldSet, prefix: &mut Path) {
    for (k, v) in node.iter_mut() {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        if let Value::Object(child) = v {
            mark_owned(child, set, prefix);
            let has_children = child.keys().any(|c| c != ".");
            if has_children && set.contains(prefix) {
                child.insert(".".into(), json!({}));
            }
        }
        prefix.pop();
    }
}

/// The field set of a `FieldsV1` JSON.
pub fn decode(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    decode_into(fields, &mut Vec::new(), &mut out);
    out
}

fn decode_into(node: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Value::Object(m) = node else { return };
    if !prefix.is_empty() && (m.is_empty() || m.contains_key(".")) {
        out.insert(prefix.clone());
    }
    for (k, v) in m {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        decode_into(v, prefix, out);
        prefix.pop();
    }
}

/// Kubernetes' rendering of a path in conflict messages: `.spec.containers[name="web"].image`.
pub fn render(path: &[String]) -> String {
    let mut out = String::new();
    for elem in path {
        if let Some(name) = elem.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = elem.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = elem.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}
