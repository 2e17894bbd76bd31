//! The namespace controller's decisions, IO-free: which resources a terminating namespace must be
//! emptied of (every namespaced kind that can be listed and deleted), what to delete of what is
//! left, the status conditions that report the remainder (Kubernetes' `NamespaceDeletion*` and
//! `Namespace*Remaining` conditions, with its reasons and messages), and the `finalize` request.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use niwa_api::ResourceInfo;

/// The finalizer (in `spec.finalizers`) this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// Namespaced resources that can be listed and deleted: what a namespace is emptied of.
pub fn deletable(resources: &'static [ResourceInfo]) -> Vec<&'static ResourceInfo> {
    resources
        .iter()
        .filter(|r| r.namespaced && r.verbs.contains(&"list") && r.verbs.contains(&"delete"))
        .collect()
}

/// Whether the namespace is being deleted and still waits for this controller.
pub fn needs_finalizing(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// One object found in the namespace: its name, whether it is already being deleted, and its
/// finalizers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

/// What is left in the namespace, per resource (`pods.`, `deployments.apps` — Kubernetes'
/// `resource.group` spelling).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Remaining {
    pub resources: BTreeMap<String, usize>,
    pub finalizers: BTreeMap<String, usize>,
    /// Resources whose listing or deletion failed, with the error.
    pub failures: BTreeMap<String, String>,
}

impl Remaining {
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.failures.is_empty()
    }

    /// Count what was found of one resource; returns the names to delete (those not already
    /// being deleted).
    pub fn add(&mut self, resource: &ResourceInfo, found: &[Found]) -> Vec<String> {
        if found.is_empty() {
            return Vec::new();
        }
        self.resources.insert(resource_name(resource), found.len());
        for f in found {
            for fin in &f.finalizers {
                *self.finalizers.entry(fin.clone()).or_default() += 1;
            }
        }
        found
            .iter()
            .filter(|f| !f.deleting)
            .map(|f| f.name.clone())
            .collect()
    }
}

/// `pods.` / `deployments.apps`.
pub fn resource_name(r: &ResourceInfo) -> String {
    format!("{}.{}", r.plural, r.group)
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
    }
}

/// The five conditions Kubernetes reports on a terminating namespace.
pub fn conditions(remaining: &Remaining, now: Timestamp) -> Vec<NamespaceCondition> {
    let mut out = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
            now,
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
            now,
        ),
    ];
    out.push(if remaining.failures.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
            now,
        )
    } else {
        let list: Vec<String> = remaining
            .failures
            .iter()
            .map(|(r, e)| format!("{r}: {e}"))
            .collect();
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                list.len(),
                list.join(", ")
            ),
            now,
        )
    });
    out.push(if remaining.resources.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".into(),
            now,
        )
    } else {
        let list: Vec<String> = remaining
            .resources
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", list.join(", ")),
            now,
        )
    });
    out.push(if remaining.finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
            now,
        )
    } else {
        let list: Vec<String> = remaining
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                list.join(", ")
            ),
            now,
        )
    });
    out
}

/// Whether two condition lists say the same (transition times aside).
pub fn same_conditions(a: &[NamespaceCondition], b: &[NamespaceCondition]) -> bool {
    let strip =
        |c: &[NamespaceCondition]| -> Vec<(String, String, Option<String>, Option<String>)> {
            c.iter()
                .map(|c| {
                    (
                        c.type_.clone(),
                        c.status.clone(),
                        c.reason.clone(),
                        c.message.clone(),
                    )
                })
                .collect()
        };
    strip(a) == strip(b)
}

/// Merge new conditions into the old ones, keeping a condition's transition time while its
/// status does not change.
pub fn merge_conditions(
    old: &[NamespaceCondition],
    new: Vec<NamespaceCondition>,
) -> Vec<NamespaceCondition> {
    new.into_iter()
        .map(|mut c| {
            if let Some(prev) = old.iter().find(|o| o.type_ == c.type_)
                && prev.status == c.status
            {
                c.last_transition_time = prev.last_transition_time.clone();
            }
            c
        })
        .collect()
}

/// The namespace with this controller's finalizer removed (the body of `namespaces/{n}/finalize`).
pub fn finalized(ns: &Namespace) -> Namespace {
    let mut out = ns.clone();
    if let Some(spec) = out.spec.as_mut() {
        let left: Vec<String> = spec
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        spec.finalizers = Some(left);
    }
    out
}

#[cfg(test)]
#[path = "core/tests.rs"]
mod tests;
