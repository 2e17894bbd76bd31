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
//!
//! The field sets themselves (walking an object, FieldsV1 encoding, paths) are in `fields`; the
//! golden tests in `tests`.

mod fields;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::schema::{self, ListKind, Type};

/// One element of a field path, in FieldsV1 spelling: `f:name`, `k:{"name":"web"}`, `v:"x"`.
pub type Path = Vec<String>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<Path>;

use fields::remove;
pub use fields::{decode, encode, field_set, get, render};

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
