//! What the verbs return: typed lists, watch events, object references, and [`ResourceExt`]
//! accessors for the metadata every object has.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::Metadata;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use niwa_api::ApiError;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// One page of a List.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectList<K> {
    pub items: Vec<K>,
    /// The list's resourceVersion: watch from here to see every later change.
    pub resource_version: String,
    /// Set when a limited list has more: pass it to [`crate::ListParams::continue_token`].
    pub continue_token: Option<String>,
    /// How many items follow, when the apiserver knows.
    pub remaining_item_count: Option<i64>,
}

impl<K> Default for ObjectList<K> {
    fn default() -> Self {
        ObjectList {
            items: Vec::new(),
            resource_version: String::new(),
            continue_token: None,
            remaining_item_count: None,
        }
    }
}

impl<K> IntoIterator for ObjectList<K> {
    type Item = K;
    type IntoIter = std::vec::IntoIter<K>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireListMeta {
    #[serde(default)]
    resource_version: String,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
    #[serde(default)]
    remaining_item_count: Option<i64>,
}

#[derive(Deserialize)]
struct WireList<K> {
    #[serde(default = "empty_meta")]
    metadata: WireListMeta,
    #[serde(default = "Vec::new")]
    items: Vec<K>,
}

fn empty_meta() -> WireListMeta {
    WireListMeta {
        resource_version: String::new(),
        continue_token: None,
        remaining_item_count: None,
    }
}

impl<K: DeserializeOwned> ObjectList<K> {
    /// Decodes a `<Kind>List`.
    pub(crate) fn from_json(bytes: &[u8], what: &str) -> Result<ObjectList<K>> {
        let list: WireList<K> = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("a {what} list"), e))?;
        Ok(ObjectList {
            items: list.items,
            resource_version: list.metadata.resource_version,
            continue_token: list.metadata.continue_token.filter(|c| !c.is_empty()),
            remaining_item_count: list.metadata.remaining_item_count,
        })
    }
}

/// One event of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<K> {
    Added(K),
    Modified(K),
    Deleted(K),
    /// Nothing the watch selects changed up to this resourceVersion.
    Bookmark(String),
    /// The watch failed; a 410 Expired here means: re-list and watch again.
    Error(ApiError),
}

impl<K: DeserializeOwned> WatchEvent<K> {
    pub(crate) fn decode(kind: &str, object: &[u8], what: &str) -> Result<WatchEvent<K>> {
        let typed = |object: &[u8]| {
            serde_json::from_slice::<K>(object)
                .map_err(|e| Error::decode(format!("a {what} watch event"), e))
        };
        Ok(match kind {
            "ADDED" => WatchEvent::Added(typed(object)?),
            "MODIFIED" => WatchEvent::Modified(typed(object)?),
            "DELETED" => WatchEvent::Deleted(typed(object)?),
            "BOOKMARK" => {
                let v: serde_json::Value = serde_json::from_slice(object)
                    .map_err(|e| Error::decode("a BOOKMARK watch event", e))?;
                let rv = v["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default();
                WatchEvent::Bookmark(rv.to_string())
            }
            "ERROR" => {
                let v: serde_json::Value = serde_json::from_slice(object)
                    .map_err(|e| Error::decode("an ERROR watch event", e))?;
                WatchEvent::Error(ApiError::from_status(&v))
            }
            other => {
                return Err(Error::Transport(format!(
                    "unknown watch event type {other:?}"
                )));
            }
        })
    }
}

/// Names one object of a known kind: its namespace (`None` for cluster-scoped objects) and
/// name. The key of reflector stores and controller work queues.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// A cluster-scoped object (or use [`ObjectRef::within`] for a namespaced one).
    pub fn new(name: &str) -> ObjectRef {
        ObjectRef {
            namespace: None,
            name: name.to_string(),
        }
    }

    pub fn within(mut self, namespace: &str) -> ObjectRef {
        self.namespace = (!namespace.is_empty()).then(|| namespace.to_string());
        self
    }

    pub fn from_obj<K: Metadata<Ty = ObjectMeta> + ?Sized>(obj: &K) -> ObjectRef {
        let md = obj.metadata();
        ObjectRef {
            namespace: md.namespace.clone().filter(|n| !n.is_empty()),
            name: md.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `namespace/name`, or `name` — the form client-go logs keys in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Accessors for the metadata of any object.
pub trait ResourceExt: Metadata<Ty = ObjectMeta> {
    /// `metadata.name` ("" before the server generated one).
    fn name_any(&self) -> String {
        self.metadata().name.clone().unwrap_or_default()
    }
    fn namespace(&self) -> Option<String> {
        self.metadata().namespace.clone().filter(|n| !n.is_empty())
    }
    fn resource_version(&self) -> Option<String> {
        self.metadata().resource_version.clone()
    }
    fn uid(&self) -> Option<String> {
        self.metadata().uid.clone()
    }
    fn labels(&self) -> BTreeMap<String, String> {
        self.metadata().labels.clone().unwrap_or_default()
    }
    fn annotations(&self) -> BTreeMap<String, String> {
        self.metadata().annotations.clone().unwrap_or_default()
    }
    fn owner_references(&self) -> &[OwnerReference] {
        self.metadata()
            .owner_references
            .as_deref()
            .unwrap_or_default()
    }
    fn finalizers(&self) -> &[String] {
        self.metadata().finalizers.as_deref().unwrap_or_default()
    }
    /// The ownerReference with `controller: true`, if any.
    fn controller_owner(&self) -> Option<&OwnerReference> {
        self.owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
    }
    /// The object is being deleted (it has a deletionTimestamp) and waits for finalizers or a
    /// grace period.
    fn is_deleting(&self) -> bool {
        self.metadata().deletion_timestamp.is_some()
    }
    fn object_ref(&self) -> ObjectRef {
        ObjectRef::from_obj(self)
    }
    /// A core/v1 ObjectReference to this object (for Events and `involvedObject`).
    fn object_reference(&self) -> ObjectReference {
        let md = self.metadata();
        ObjectReference {
            api_version: Some(Self::API_VERSION.to_string()),
            kind: Some(Self::KIND.to_string()),
            name: md.name.clone(),
            namespace: md.namespace.clone(),
            uid: md.uid.clone(),
            resource_version: md.resource_version.clone(),
            field_path: None,
        }
    }
    /// An ownerReference to this object, marking it as the controller of the child it is put on.
    fn controller_owner_ref(&self) -> OwnerReference {
        let md = self.metadata();
        OwnerReference {
            api_version: Self::API_VERSION.to_string(),
            kind: Self::KIND.to_string(),
            name: md.name.clone().unwrap_or_default(),
            uid: md.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

impl<K: Metadata<Ty = ObjectMeta>> ResourceExt for K {}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn lists_decode_with_their_metadata() {
        let json = br#"{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"7","continue":"abc","remainingItemCount":3},
            "items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"ns"}}]}"#;
        let list: ObjectList<Pod> = ObjectList::from_json(json, "pods").expect("decodes");
        assert_eq!(list.resource_version, "7");
        assert_eq!(list.continue_token.as_deref(), Some("abc"));
        assert_eq!(list.remaining_item_count, Some(3));
        assert_eq!(list.items[0].name_any(), "a");
        assert_eq!(list.items[0].object_ref(), ObjectRef::new("a").within("ns"));
        assert_eq!(list.items[0].object_ref().to_string(), "ns/a");
    }

    #[test]
    fn watch_events_decode() {
        let ev: WatchEvent<Pod> = WatchEvent::decode(
            "BOOKMARK",
            br#"{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"42"}}"#,
            "pods",
        )
        .expect("decodes");
        assert_eq!(ev, WatchEvent::Bookmark("42".into()));
        let err = ApiError::expired("too old resource version: 1 (5)");
        let body = serde_json::to_vec(&err.to_status()).expect("json");
        let ev: WatchEvent<Pod> = WatchEvent::decode("ERROR", &body, "pods").expect("decodes");
        assert_eq!(ev, WatchEvent::Error(err));
        assert!(
            WatchEvent::<Pod>::decode("ADDED", br#"{"apiVersion":"v1","kind":"Node"}"#, "pods")
                .is_err()
        );
        assert!(WatchEvent::<Pod>::decode("SURPRISE", b"{}", "pods").is_err());
    }
}
