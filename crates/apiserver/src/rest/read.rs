//! Get and List: selectors, limit/continue, and resourceVersion semantics.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use niwa_api::selector::{FieldSelector, LabelSelector};
use niwa_api::{ApiError, ResourceInfo};
use serde_json::{Value, json};

use super::Rest;
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
    pub async fn list(
        &self,
        info: &'static ResourceInfo,
        namespace: &str,
        opts: &ListOptions,
    ) -> Result<Value, ApiError> {
        let filter = Filter::parse(info, &opts.label_selector, &opts.field_selector)?;
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
            let exact = opts.resource_version_match == "Exact";
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
                    items.push(obj);
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

        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(next) = next_key {
            metadata["continue"] = json!(encode_continue(revision, &next));
            if filter.is_everything() && remaining > 0 {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "apiVersion": info.api_version(),
            "kind": info.list_kind(),
            "metadata": metadata,
            "items": items,
        }))
    }
}
