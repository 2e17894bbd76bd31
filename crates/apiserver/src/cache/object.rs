//! An object as the watch cache keeps it: its JSON encoding (with resourceVersion set, ready to be
//! sent to any number of clients without re-encoding) plus the few parsed parts that selectors
//! need (namespace, name, labels, the kind's selectable fields).

use std::collections::BTreeMap;

use bytes::Bytes;
use niwa_api::ResourceInfo;
use niwa_api::selector::field::{field_value, kind_fields};
use serde_json::Value;

use crate::object;
use crate::rest::Filter;

#[derive(Debug)]
pub struct CachedObject {
    /// The store key (`/registry/...`); the cache's index.
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Values of the kind's selectable fields, in the order of `kind_fields(kind)`.
    fields: Vec<String>,
    kind: &'static str,
    /// Whether it has a deletionTimestamp (NamespaceLifecycle asks this of namespaces).
    pub deleting: bool,
    /// The mod revision (resourceVersion) this encoding carries.
    pub revision: i64,
    pub json: Bytes,
}

impl CachedObject {
    /// Builds the cached form of `value` at `revision` (which becomes its resourceVersion).
    pub fn new(info: &'static ResourceInfo, key: String, mut value: Value, revision: i64) -> Self {
        object::set_resource_version(&mut value, revision);
        let fields = kind_fields(info.kind)
            .iter()
            .map(|f| field_value(&value, f))
            .collect();
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        CachedObject {
            key,
            namespace: object::namespace(&value).to_string(),
            name: object::name(&value).to_string(),
            labels: object::labels(&value),
            deleting: object::is_deleting(&value),
            fields,
            kind: info.kind,
            revision,
            json,
        }
    }

    /// The value of a selectable field, as field selectors compare it.
    pub fn field(&self, field: &str) -> String {
        self.field_ref(field).to_string()
    }

    /// [`CachedObject::field`] without the copy ("" for a field the kind does not have).
    pub fn field_ref(&self, field: &str) -> &str {
        match field {
            "metadata.name" => &self.name,
            "metadata.namespace" => &self.namespace,
            other => kind_fields(self.kind)
                .iter()
                .position(|f| *f == other)
                .and_then(|i| self.fields.get(i))
                .map_or("", String::as_str),
        }
    }

    pub fn matches(&self, filter: &Filter) -> bool {
        filter.labels.matches(&self.labels) && filter.fields.matches_with(|f| self.field(f))
    }

    /// The decoded object (for callers that need to look inside).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The same object re-stamped at `revision` (a deletion is reported with the object's last
    /// state at the deletion's revision, as Kubernetes does).
    pub fn at_revision(&self, info: &'static ResourceInfo, revision: i64) -> CachedObject {
        CachedObject::new(info, self.key.clone(), self.value(), revision)
    }
}
