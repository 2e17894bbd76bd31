//! Get and List: selectors, limit/continue, and resourceVersion semantics.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use niwa_api::selector::{FieldSelector, LabelSelector};
use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};

use super::Rest;
use crate::cache::PageRequest;
use crate::object;
use crate::storage::StorageError;

/// The query of a List (or the filter of a Watch).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: i64,
    pub continue_token: String,
    pub resource_version: String,
    pub resource_version_match: String,
}

/// A compiled label + field filter.
#[derive(Debug, Clone)]
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn parse(info: &ResourceInfo, labels: &str, fields: &str) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(labels)
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(fields, info.kind)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Filter { labels, fields })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_everything() && self.fields.is_everything()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&object::labels(obj)) && self.fields.matches(obj)
    }
}

/// A list result with its items kept encoded, so that a list served from the watch cache is
/// written out without decoding or re-encoding any object.
#[derive(Debug, Clone)]
pub struct ObjectList {
    pub api_version: String,
    pub kind: String,
    pub resource_version: i64,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
    pub items: Vec<Bytes>,
}

impl ObjectList {
    /// The `<Kind>List` JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut metadata = json!({"resourceVersion": self.resource_version.to_string()});
        if let Some(c) = &self.continue_token {
            metadata["continue"] = json!(c);
        }
        if let Some(n) = self.remaining_item_count {
            metadata["remainingItemCount"] = json!(n);
        }
        let head = json!({"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata});
        let mut out = serde_json::to_vec(&head).unwrap_or_default();
        out.pop(); // the closing brace: items follow
        let size: usize = self.items.iter().map(|i| i.len() + 1).sum();
        out.reserve(size + 16);
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The decoded `<Kind>List`.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.to_json()).unwrap_or(Value::Null)
    }

    /// The decoded items.
    pub fn values(&self) -> Vec<Value> {
        self.items
            .iter()
            .filter_map(|i| serde_json::from_slice(i).ok())
            .collect()
    }
}

/// The revision a list reads at.
#[derive(Debug, Clone, Copy)]
enum At {
    /// The store's current revision (a consistent read).
    Latest,
    /// Whatever the cache has (`resourceVersion=0`).
    Any,
    /// Exactly this revision (`resourceVersionMatch=Exact`, a continue token).
    Exact(i64),
    /// This revision or a later one.
    NotOlderThan(i64),
}

/// How long a consistent list waits for the watch cache to catch up before reading the store.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// Store pages read per round while filtering a limited list.
const LIST_PAGE: i64 = 500;

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent \
    list result. You can start a new list without the continue parameter, or use the continue token \
    in this response to retrieve the remainder of the results. Continuing with the provided token \
    results in an inconsistent list - objects that were created, modified, or deleted between the \
    time the first chunk was returned and now may show up in the list.";

fn encode_continue(revision: i64, next_key: &str) -> String {
    B64.encode(json!({"v": "meta.k8s.io/v1", "rv": revision, "start": next_key}).to_string())
}

fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = B64.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rv, start))
}

impl Rest {
    pub async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = Self::key(info, namespace, name)?;
        match self.storage.get(&key, 0).await? {
            Some(mut stored) => {
                object::set_resource_version(&mut stored.object, stored.revision);
                Ok(stored.object)
            }
            None => Err(ApiError::not_found(info, name)),
        }
    }

    /// Lists objects of `info` in `namespace` (all namespaces when empty) as a `<Kind>List`.
    ///
    /// Served from the watch cache, paginated or not, unless only the store has the requested
    /// revision: an exact revision (or a continue token's) older than the cache's history window,
    /// or a cache that cannot catch up. A list without a resourceVersion is consistent: it waits
    /// until the cache has seen the store's current revision. `resourceVersion=0` is served from
    /// the cache as it is, ignoring `limit` (as Kubernetes' watch cache does).
    pub async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let filter = Filter::parse(info, &opts.label_selector, &opts.field_selector)?;
        let rv = object::parse_resource_version(&opts.resource_version)
            .map_err(ApiError::bad_request)?;
        let ns = if namespace.is_empty() {
            filter.fields.exact("metadata.namespace")
        } else {
            Some(namespace)
        };
        let prefix = info.store_namespace_prefix(ns);
        let limit = usize::try_from(opts.limit).unwrap_or(0);
        // Which revision the list is a snapshot of, and where it starts.
        let (at, start, limit) = if !opts.continue_token.is_empty() {
            let (rv, start) = decode_continue(&opts.continue_token)?;
            if !start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid for this list",
                ));
            }
            (At::Exact(rv), Some(start), limit)
        } else {
            let exact = opts.resource_version_match == "Exact"
                || (opts.resource_version_match.is_empty() && limit > 0);
            match rv {
                None => (At::Latest, None, limit),
                Some(0) => (At::Any, None, 0),
                Some(n) if exact => (At::Exact(n), None, limit),
                Some(n) => (At::NotOlderThan(n), None, limit),
            }
        };
        let cache = self.caches.get(info).await?;
        let needed = match at {
            At::Latest => self.storage.current_revision().await?,
            At::Any => 0,
            At::Exact(n) | At::NotOlderThan(n) => n,
        };
        if cache.revision() >= needed || cache.wait_for(needed, FRESHNESS_TIMEOUT).await {
            let req = PageRequest {
                prefix: &prefix,
                filter: &filter,
                start: start.as_deref(),
                limit,
            };
            let exact = match at {
                At::Exact(n) => Some(n),
                _ => None,
            };
            if let Some(page) = cache.list_page(exact, &req) {
                let continue_token = page
                    .next_key
                    .as_deref()
                    .map(|next| encode_continue(page.revision, next));
                return Ok(ObjectList {
                    api_version: info.api_version(),
                    kind: info.list_kind(),
                    resource_version: page.revision,
                    continue_token,
                    remaining_item_count: page.remaining,
                    items: page.items,
                });
            }
        }
        tracing::debug!(
            resource = info.plural,
            "list not servable from the watch cache; listing from the store"
        );
        self.list_store(info, namespace, opts, filter).await
    }

    async fn list_store(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        opts: &ListOptions,
        filter: Filter,
    ) -> Result<ObjectList, ApiError> {
        let ns = if namespace.is_empty() {
            filter
                .fields
                .exact("metadata.namespace")
                .map(str::to_string)
        } else {
            Some(namespace.to_string())
        };
        let prefix = info.store_namespace_prefix(ns.as_deref());
        let (mut revision, mut start) = if opts.continue_token.is_empty() {
            // `resourceVersionMatch=Exact`, or the legacy form: a resourceVersion with a limit.
            let exact = opts.resource_version_match == "Exact"
                || (opts.resource_version_match.is_empty() && opts.limit > 0);
            let rv = object::parse_resource_version(&opts.resource_version)
                .map_err(ApiError::bad_request)?
                .unwrap_or(0);
            (if exact { rv } else { 0 }, None)
        } else {
            let (rv, start) = decode_continue(&opts.continue_token)?;
            if !start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid for this list",
                ));
            }
            (rv, Some(start))
        };

        let limit = opts.limit.max(0);
        let mut items = Vec::new();
        let mut next_key = None;
        let mut remaining = 0;
        loop {
            let page_size = if limit > 0 {
                LIST_PAGE.max(limit + 1)
            } else {
                0
            };
            let page = match self
                .storage
                .list(&prefix, start.as_deref(), page_size, revision)
                .await
            {
                Ok(page) => page,
                Err(StorageError::Compacted(_)) if !opts.continue_token.is_empty() => {
                    return Err(ApiError::expired(EXPIRED_CONTINUE));
                }
                Err(e) => return Err(e.into()),
            };
            // Later pages (and continue tokens) read at the revision of the first page, so one
            // list is one consistent snapshot.
            if revision == 0 {
                revision = page.revision;
            }
            let fetched = page.items.len();
            let more = page.remaining > 0;
            let mut last_key = None;
            for stored in page.items {
                if limit > 0 && items.len() as i64 == limit {
                    // The list is full and one more match exists: continue from it.
                    next_key = Some(stored.key.clone());
                    break;
                }
                last_key = Some(stored.key.clone());
                let mut obj = stored.object;
                if filter.matches(&obj) {
                    object::set_resource_version(&mut obj, stored.revision);
                    items.push(Bytes::from(serde_json::to_vec(&obj).unwrap_or_default()));
                }
            }
            if next_key.is_some() || !more || fetched == 0 {
                if next_key.is_some() && filter.is_everything() {
                    remaining = page.remaining + (fetched as i64 - items.len() as i64).max(0);
                }
                break;
            }
            // Keys are read in order; the next page starts right after the last one seen.
            start = last_key.map(|k| format!("{k}\0"));
            if let Some(s) = &start {
                tracing::trace!(start = %s, "next list page");
            }
        }

        let continue_token = next_key.map(|next| encode_continue(revision, &next));
        let remaining_item_count =
            (continue_token.is_some() && filter.is_everything() && remaining > 0)
                .then_some(remaining);
        Ok(ObjectList {
            api_version: info.api_version(),
            kind: info.list_kind(),
            resource_version: revision,
            continue_token,
            remaining_item_count,
            items,
        })
    }
}
