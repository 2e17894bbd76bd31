//! Parameters of the verbs: list and watch queries, write options, patches, delete options.

use serde_json::{Value, json};

/// Which resourceVersion a list may be served at (`resourceVersionMatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionMatch {
    /// At least the given resourceVersion (the apiserver's watch cache may answer).
    NotOlderThan,
    /// Exactly the given resourceVersion (read from the store's history).
    Exact,
}

/// The query of a List.
///
/// Without a resourceVersion a list is consistent (it reflects every write acknowledged before
/// it). `.any_version()` (resourceVersion "0") lets the apiserver answer from its cache at
/// whatever revision it has, which is cheaper and what watchers use to start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Page size; 0 or `None` lists everything at once.
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub version_match: Option<VersionMatch>,
}

impl ListParams {
    /// A label selector (`app=web,tier in (fe,be),!canary`).
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    /// A field selector (`spec.nodeName=n1,status.phase!=Running`).
    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    /// At most `n` items per page; the rest follows with [`ListParams::continue_token`].
    pub fn limit(mut self, n: i64) -> Self {
        self.limit = Some(n);
        self
    }

    /// The next page of an earlier limited list.
    pub fn continue_token(mut self, token: &str) -> Self {
        self.continue_token = Some(token.to_string());
        self
    }

    /// Served from the apiserver's cache at any resourceVersion (resourceVersion "0").
    pub fn any_version(mut self) -> Self {
        self.resource_version = Some("0".into());
        self.version_match = None;
        self
    }

    /// Not older than `rv`.
    pub fn at_least(mut self, rv: &str) -> Self {
        self.resource_version = Some(rv.to_string());
        self.version_match = Some(VersionMatch::NotOlderThan);
        self
    }

    /// Exactly at `rv` (410 Expired when that revision is compacted).
    pub fn at(mut self, rv: &str) -> Self {
        self.resource_version = Some(rv.to_string());
        self.version_match = Some(VersionMatch::Exact);
        self
    }
}

/// The filter and options of a Watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Ask for BOOKMARK events, which advance the resourceVersion a watch resumes from while
    /// nothing it selects changes (on by default, as in kube-rs).
    pub bookmarks: bool,
}

impl Default for WatchParams {
    fn default() -> Self {
        WatchParams {
            label_selector: None,
            field_selector: None,
            bookmarks: true,
        }
    }
}

impl WatchParams {
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    pub fn bookmarks(mut self, on: bool) -> Self {
        self.bookmarks = on;
        self
    }
}

/// Options of create, replace and patch (set once per [`crate::Api`] with
/// [`crate::Api::field_manager`] / [`crate::Api::dry_run`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostParams {
    /// Validate and default, but store nothing.
    pub dry_run: bool,
    /// Who makes the change (`managedFields`).
    pub field_manager: Option<String>,
}

/// A patch and its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge, `null`
    /// deletes, lists are replaced.
    Merge(Value),
    /// RFC 6902 JSON patch (`application/json-patch+json`): a list of operations.
    Json(Value),
    /// Kubernetes strategic merge patch (lists merged by their merge keys).
    Strategic(Value),
    /// Server-side apply of a (partial) object by `field_manager`.
    Apply {
        value: Value,
        field_manager: String,
        force: bool,
    },
}

impl Patch {
    /// The content type the apiserver knows the patch by.
    pub fn content_type(&self) -> &'static str {
        match self {
            Patch::Merge(_) => "application/merge-patch+json",
            Patch::Json(_) => "application/json-patch+json",
            Patch::Strategic(_) => "application/strategic-merge-patch+json",
            Patch::Apply { .. } => "application/apply-patch+yaml",
        }
    }

    pub fn value(&self) -> &Value {
        match self {
            Patch::Merge(v) | Patch::Json(v) | Patch::Strategic(v) => v,
            Patch::Apply { value, .. } => value,
        }
    }
}

/// How dependents of a deleted object are deleted (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are deleted in the background after the owner is gone (the default).
    Background,
    /// The owner stays (with a `foregroundDeletion` finalizer) until its dependents are gone.
    Foreground,
    /// Dependents are kept and their ownerReferences to the owner removed.
    Orphan,
}

impl Propagation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        }
    }
}

/// `DeleteOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteParams {
    /// Seconds a pod gets to terminate; 0 deletes at once.
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<Propagation>,
    /// Delete only if the object still has this uid.
    pub precondition_uid: Option<String>,
    /// Delete only if the object still has this resourceVersion.
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteParams {
    pub fn grace_period(mut self, seconds: i64) -> Self {
        self.grace_period_seconds = Some(seconds);
        self
    }

    pub fn propagation(mut self, policy: Propagation) -> Self {
        self.propagation_policy = Some(policy);
        self
    }

    pub fn precondition_uid(mut self, uid: &str) -> Self {
        self.precondition_uid = Some(uid.to_string());
        self
    }

    pub fn precondition_resource_version(mut self, rv: &str) -> Self {
        self.precondition_resource_version = Some(rv.to_string());
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The `DeleteOptions` JSON the apiserver reads (empty for all defaults).
    pub fn to_json(&self) -> Value {
        let mut opts = serde_json::Map::new();
        if let Some(g) = self.grace_period_seconds {
            opts.insert("gracePeriodSeconds".into(), json!(g));
        }
        if let Some(p) = self.propagation_policy {
            opts.insert("propagationPolicy".into(), json!(p.as_str()));
        }
        let mut pre = serde_json::Map::new();
        if let Some(uid) = &self.precondition_uid {
            pre.insert("uid".into(), json!(uid));
        }
        if let Some(rv) = &self.precondition_resource_version {
            pre.insert("resourceVersion".into(), json!(rv));
        }
        if !pre.is_empty() {
            opts.insert("preconditions".into(), Value::Object(pre));
        }
        if self.dry_run {
            opts.insert("dryRun".into(), json!(["All"]));
        }
        Value::Object(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_params_serialize_as_delete_options() {
        assert_eq!(DeleteParams::default().to_json(), json!({}));
        let dp = DeleteParams::default()
            .grace_period(0)
            .propagation(Propagation::Foreground)
            .precondition_uid("u1")
            .dry_run();
        assert_eq!(
            dp.to_json(),
            json!({"gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
                   "preconditions": {"uid": "u1"}, "dryRun": ["All"]})
        );
    }

    #[test]
    fn list_params_build() {
        let lp = ListParams::default().labels("app=x").limit(5).any_version();
        assert_eq!(lp.label_selector.as_deref(), Some("app=x"));
        assert_eq!(lp.limit, Some(5));
        assert_eq!(lp.resource_version.as_deref(), Some("0"));
        assert!(WatchParams::default().bookmarks);
    }
}
