//! Reading and setting the metadata of objects in their JSON form. The REST layer is generic over
//! kinds, so it works on `serde_json::Value` rather than typed structs.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{Map, Value, json};

pub fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

/// The metadata map, created if absent (or replaced if it is not an object). `obj` must be a JSON
/// object; the REST layer rejects other bodies before they get here.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let md = &mut obj["metadata"];
    if !md.is_object() {
        *md = Value::Object(Map::new());
    }
    match md {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

pub fn str_field<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

pub fn name(obj: &Value) -> &str {
    str_field(obj, "name")
}

pub fn namespace(obj: &Value) -> &str {
    str_field(obj, "namespace")
}

pub fn uid(obj: &Value) -> &str {
    str_field(obj, "uid")
}

pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(&obj["metadata"]["labels"])
}

pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// `metadata.resourceVersion` parsed; `Ok(None)` when absent or empty.
pub fn resource_version(obj: &Value) -> Result<Option<i64>, String> {
    parse_resource_version(str_field(obj, "resourceVersion"))
}

pub fn parse_resource_version(rv: &str) -> Result<Option<i64>, String> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse::<i64>()
        .map(Some)
        .map_err(|_| format!("invalid resource version {rv:?}"))
}

pub fn set_resource_version(obj: &mut Value, revision: i64) {
    meta_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// The current time as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `now + seconds`, in the same format.
pub fn now_plus(seconds: i64) -> String {
    let ts = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Kubernetes' generateName suffix: 5 characters from an alphabet without vowels or look-alikes.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Everything of an object except metadata and status: a change here bumps `generation`.
pub fn spec_part(obj: &Value) -> Value {
    let mut rest = obj.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "status", "apiVersion", "kind"] {
        rest.remove(k);
    }
    Value::Object(rest)
}
