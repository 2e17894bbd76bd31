//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write made with a field manager records which fields that manager set, in Kubernetes'
//! `FieldsV1` form (`{"f:spec": {"f:replicas": {}}}`, list items as `k:{"name":"web"}`, set
//! members as `v:"x"`). An apply (`application/apply-patch+yaml`) merges the applied
//! configuration into the live object, removes the fields this manager applied before and no
//! longer applies (unless someone else also owns them), and refuses — 409 Conflict, one cause
//! per field — to change a field another manager owns with a different value, unless forced (then
//! ownership moves to the applier).
//!
//! Simplifications (said plainly): list items are identified by the single patch merge key of
//! [`super::schema`] (Kubernetes uses all `x-kubernetes-list-map-keys`); unknown lists are
//! atomic; ownership is tracked only for writes that name a field manager; fields set by
//! defaulting belong to nobody (as in Kubernetes).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::schema::{self, ListKind, Type};

/// One element of a field path, in FieldsV1 spelling: `f:name`, `k:{"name":"web"}`, `v:"x"`.
pub type Path = Vec<String>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<Path>;

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
fn remove(obj: &mut Value, path: &[String]) {
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

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut v = json!({"manager": self.manager, "operation": self.operation,
            "apiVersion": self.api_version, "time": self.time, "fieldsType": "FieldsV1",
            "fieldsV1": encode(&self.fields)});
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }

    fn from_json(v: &Value) -> Entry {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: s("time"),
            subresource: s("subresource"),
            fields: decode(&v["fieldsV1"]),
        }
    }
}

/// The managedFields of an object.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| a.iter().map(Entry::from_json).collect())
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            md.remove("managedFields");
        } else {
            md.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who is writing: manager name, the object's apiVersion, the time, and the subresource.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub subresource: &'a str,
}

fn upsert<'e>(entries: &'e mut Vec<Entry>, w: &Writer<'_>, operation: &str) -> &'e mut Entry {
    let pos = entries.iter().position(|e| {
        e.manager == w.manager && e.operation == operation && e.subresource == w.subresource
    });
    let i = match pos {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: w.manager.into(),
                operation: operation.into(),
                api_version: w.api_version.into(),
                time: w.time.into(),
                subresource: w.subresource.into(),
                fields: FieldSet::new(),
            });
            entries.len() - 1
        }
    };
    let e = &mut entries[i];
    e.api_version = w.api_version.into();
    e.time = w.time.into();
    e
}

/// Records an ordinary write (create, update, patch) by `w`: the fields it changed become its
/// own (taken from whoever owned them), fields that disappeared are nobody's. `old` is the
/// stored object (`None` on create); `new` gets its `managedFields` updated in place.
pub fn track_update(old: Option<&Value>, new: &mut Value, root: Type, w: &Writer<'_>) {
    let mut list = match old {
        // A body that carries managedFields different from the stored ones resets them, as in
        // Kubernetes; otherwise the stored ones continue.
        Some(o) if new["metadata"]["managedFields"].is_null() => entries(o),
        _ => entries(new),
    };
    let new_set = field_set(new, root);
    let old_set = old.map(|o| field_set(o, root)).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.is_none_or(|o| get(o, p) != get(new, p)))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    for e in list.iter_mut() {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let mine = upsert(&mut list, w, "Update");
        mine.fields.extend(changed);
    }
    store_entries(new, &list);
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// Server-side apply of `applied` (the configuration, already decoded) by `w` onto `live`
/// (`None`: the object does not exist yet). Returns the new object with its managedFields, or
/// the conflicts when not forced.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    root: Type,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let applied = without_nulls(applied);
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    let mut list = live.map(entries).unwrap_or_default();
    let applied_set = field_set(&applied, root);

    // Conflicts: fields others own whose value the apply would change.
    let mut conflicts = Vec::new();
    let mut taken: BTreeMap<usize, FieldSet> = BTreeMap::new();
    for (i, e) in list.iter().enumerate() {
        if e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource {
            continue;
        }
        for p in applied_set.intersection(&e.fields) {
            let item = p
                .last()
                .is_some_and(|l| l.starts_with("k:") || l.starts_with("v:"));
            let differs = live.is_some_and(|l| get(l, p) != get(&applied, p));
            if differs && !item {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: render(p),
                });
                taken.entry(i).or_default().insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, paths) in taken {
        list[i].fields.retain(|p| !paths.contains(p));
    }

    // Fields this manager applied before, applies no more, and nobody else owns: removed.
    let previous = list
        .iter()
        .find(|e| {
            e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource
        })
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = list
        .iter()
        .filter(|e| {
            !(e.manager == w.manager && e.operation == "Apply" && e.subresource == w.subresource)
        })
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Another manager owning anything under a path keeps it; of nested dropped paths only the
    // outermost is removed (removing a list item removes its fields).
    let dropped: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied_set.contains(*p) && !others.iter().any(|o| o.starts_with(p)))
        .collect();
    for p in &dropped {
        let nested = dropped
            .iter()
            .any(|q| q.len() < p.len() && p.starts_with(q));
        if !nested {
            remove(&mut result, p);
        }
    }

    merge(&mut result, &applied, Some(root));
    let mine = upsert(&mut list, w, "Apply");
    mine.fields = applied_set;
    store_entries(&mut result, &list);
    Ok(result)
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The applied configuration merged structurally into `target`.
fn merge(target: &mut Value, applied: &Value, ty: Option<Type>) {
    let (Value::Object(t), Value::Object(a)) = (&mut *target, applied) else {
        *target = applied.clone();
        return;
    };
    for (k, av) in a {
        let (list, child, _) = schema::lookup(ty, k);
        match (t.get_mut(k), av) {
            (Some(tv @ Value::Object(_)), Value::Object(_)) => merge(tv, av, child),
            (Some(Value::Array(items)), Value::Array(new_items)) => match list {
                ListKind::Map(key) => {
                    for item in new_items {
                        let id = item.get(key);
                        match items.iter_mut().find(|i| id.is_some() && i.get(key) == id) {
                            Some(existing) => merge(existing, item, child),
                            None => items.push(item.clone()),
                        }
                    }
                }
                ListKind::Set => {
                    for item in new_items {
                        if !items.contains(item) {
                            items.push(item.clone());
                        }
                    }
                }
                ListKind::Atomic => *items = new_items.clone(),
            },
            (_, v) => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The `409 Conflict` message Kubernetes gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let plural = if n == 1 { "" } else { "s" };
    let mut by_manager: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry((c.manager.clone(), c.api_version.clone()))
            .or_default()
            .push(c.path.clone());
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|((m, v), paths)| {
            if paths.len() == 1 {
                format!("conflict with {m:?} using {v}: {}", paths[0])
            } else {
                let list: Vec<String> = paths.iter().map(|p| format!("- {p}")).collect();
                format!("conflicts with {m:?} using {v}:\n{}", list.join("\n"))
            }
        })
        .collect();
    format!(
        "Apply failed with {n} conflict{plural}: {}",
        parts.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::root;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "apps/v1",
            time: "2025-01-01T00:00:00Z",
            subresource: "",
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d",
            "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "web", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trips() {
        let set = field_set(&deploy(1, "nginx"), root("apps", "Deployment"));
        let encoded = encode(&set);
        assert_eq!(
            encoded,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(decode(&encoded), set);
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let ty = root("apps", "Deployment");
        let created = apply(None, &deploy(1, "nginx"), ty, &w("alice"), false).expect("create");
        assert_eq!(created["spec"]["replicas"], 1);
        // Bob scales with an ordinary update: he now owns .spec.replicas.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(3);
        track_update(Some(&created), &mut scaled, ty, &w("bob"));
        // Alice re-applies replicas 1: conflict with bob.
        let err = apply(Some(&scaled), &deploy(1, "nginx"), ty, &w("alice"), false)
            .expect_err("conflict");
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"bob\" using apps/v1: .spec.replicas"
        );
        // The same value is shared ownership, not a conflict.
        assert!(apply(Some(&scaled), &deploy(3, "nginx"), ty, &w("alice"), false).is_ok());
        // Forced: alice takes replicas back.
        let forced =
            apply(Some(&scaled), &deploy(1, "nginx:2"), ty, &w("alice"), true).expect("force");
        assert_eq!(forced["spec"]["replicas"], 1);
        let bob = entries(&forced).into_iter().find(|e| e.manager == "bob");
        assert!(bob.is_none(), "bob owned nothing else");
        // Alice stops applying the label: it is removed.
        let mut smaller = deploy(1, "nginx:2");
        smaller["metadata"]
            .as_object_mut()
            .map(|m| m.remove("labels"));
        let next = apply(Some(&forced), &smaller, ty, &w("alice"), false).expect("apply");
        assert!(
            next["metadata"]
                .get("labels")
                .is_none_or(|l| l.get("app").is_none())
        );
        assert_eq!(
            next["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
    }

    #[test]
    fn render_paths() {
        let p: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"web\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(render(&p), ".spec.containers[name=\"web\"].image");
    }
}
