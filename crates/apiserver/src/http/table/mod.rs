//! Server-side printing: `meta.k8s.io` `Table`s with the columns Kubernetes' printers
//! (pkg/printers/internalversion) give each kind, so `kubectl get` looks the same against niwa.
//!
//! IO-free: every printer takes the object and "now" (for AGE), and is golden-tested.
//! * `workloads.rs` — pods (with kubectl's STATUS reasons), deployments, replicasets,
//!   statefulsets, daemonsets, jobs, cronjobs, controllerrevisions.
//! * `cluster.rs` — services, endpoints, nodes, namespaces, configmaps, secrets, events, storage,
//!   networking, and the default (`NAME`, `CREATED AT`) for kinds without a printer.
//! * `storage.rs` — storageclasses (`NAME (default)`).

mod cluster;
mod storage;
mod workloads;

use jiff::Timestamp;
use niwa_api::ResourceInfo;
use serde_json::{Value, json};

/// One column of a Table (`metav1.TableColumnDefinition`).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

pub(crate) const fn col(name: &'static str, ty: &'static str, priority: u8) -> Column {
    Column {
        name,
        ty,
        format: "",
        description: "",
        priority,
    }
}

pub(crate) const NAME: Column = Column {
    name: "Name",
    ty: "string",
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};
pub(crate) const AGE: Column = Column {
    name: "Age",
    ty: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    priority: 0,
};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: &str) -> Include {
        match v {
            "None" => Include::None,
            "Object" => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// The columns of `info`'s Table.
pub fn columns(info: &ResourceInfo) -> Vec<Column> {
    workloads::columns(info)
        .or_else(|| cluster::columns(info))
        .or_else(|| storage::columns(info))
        .unwrap_or_else(|| vec![NAME, col("Created At", "date", 0)])
}

/// The cells of one object's row, in column order.
pub fn cells(info: &ResourceInfo, obj: &Value, now: Timestamp) -> Vec<Value> {
    workloads::cells(info, obj, now)
        .or_else(|| cluster::cells(info, obj, now))
        .or_else(|| storage::cells(info, obj, now))
        .unwrap_or_else(|| {
            vec![
                json!(name(obj)),
                json!(obj["metadata"]["creationTimestamp"].as_str().unwrap_or("")),
            ]
        })
}

pub fn column_definitions(info: &ResourceInfo) -> Value {
    Value::Array(
        columns(info)
            .iter()
            .map(|c| {
                json!({"name": c.name, "type": c.ty, "format": c.format,
                    "description": c.description, "priority": c.priority})
            })
            .collect(),
    )
}

/// A Table row for `obj`.
pub fn row(
    info: &ResourceInfo,
    obj: &Value,
    include: Include,
    version: &str,
    now: Timestamp,
) -> Value {
    let mut row = json!({"cells": cells(info, obj, now)});
    if info.kind == "Pod"
        && info.group.is_empty()
        && let Some(conditions) = workloads::pod_row_conditions(obj)
    {
        row["conditions"] = conditions;
    }
    match include {
        Include::None => {}
        Include::Metadata => row["object"] = partial_metadata(obj, version),
        Include::Object => row["object"] = obj.clone(),
    }
    row
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The head of a Table (everything but `rows`).
pub fn head(
    info: &ResourceInfo,
    version: &str,
    resource_version: &str,
    continue_token: Option<&str>,
    remaining: Option<i64>,
) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    if let Some(n) = remaining {
        metadata["remainingItemCount"] = json!(n);
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "columnDefinitions": column_definitions(info),
    })
}

/// A whole Table of `objects`.
pub fn table(
    info: &ResourceInfo,
    objects: &[Value],
    include: Include,
    version: &str,
    resource_version: &str,
    now: Timestamp,
) -> Value {
    let mut t = head(info, version, resource_version, None, None);
    t["rows"] = Value::Array(
        objects
            .iter()
            .map(|o| row(info, o, include, version, now))
            .collect(),
    );
    t
}

// ---- helpers shared by the printers ----

pub(crate) fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn str_or<'a>(v: &'a Value, default: &'a str) -> &'a str {
    v.as_str().filter(|s| !s.is_empty()).unwrap_or(default)
}

pub(crate) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

pub(crate) fn parse_time(v: &Value) -> Option<Timestamp> {
    v.as_str()?.parse::<Timestamp>().ok()
}

/// `AGE`: the time since `creationTimestamp` (`<unknown>` without one).
pub(crate) fn age(obj: &Value, now: Timestamp) -> Value {
    json!(since(&obj["metadata"]["creationTimestamp"], now))
}

pub(crate) fn since(ts: &Value, now: Timestamp) -> String {
    match parse_time(ts) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// apimachinery's `duration.HumanDuration`: `45s`, `3m20s`, `15m`, `5h3m`, `20h`, `3d4h`, `20d`,
/// `2y10d`, `9y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `a=b,c=d` of a label map (sorted, as Go prints maps), `<none>` when empty.
pub(crate) fn label_map(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            parts.sort();
            parts.join(",")
        }
        _ => "<none>".into(),
    }
}

/// A `metav1.LabelSelector` as `kubectl` prints it (`app=web,tier in (a,b)`).
pub(crate) fn label_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        let mut labels: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        labels.sort();
        parts.extend(labels);
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// Containers' names and images of a pod template (`CONTAINERS`, `IMAGES` wide columns).
pub(crate) fn containers_and_images(pod_spec: &Value) -> (String, String) {
    let containers = pod_spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c["image"].as_str().unwrap_or_default())
        .collect();
    (names.join(","), images.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (300, "5m"),
            (15 * 60, "15m"),
            (179 * 60, "179m"),
            (5 * 3600 + 180, "5h3m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (20 * 86400, "20d"),
            (2 * 365 * 86400 + 10 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn selectors_print_like_kubectl() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]},
                {"key": "u", "operator": "DoesNotExist"}]});
        assert_eq!(label_selector(&sel), "a=1,b=2,t in (x,y),!u");
        assert_eq!(label_selector(&json!({})), "<none>");
    }
}
