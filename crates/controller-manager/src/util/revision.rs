//! ControllerRevisions, as Kubernetes' `pkg/controller/history` keeps them for DaemonSets and
//! StatefulSets: each distinct pod template is stored once as a ControllerRevision named
//! `<owner>-<hash>`, with `data` = `{"spec":{"template":{…,"$patch":"replace"}}}` and an increasing
//! `revision` number; pods carry the revision's name in the `controller-revision-hash` label.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

use super::hash::compute_hash;

pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The revision `data` of a template (what Kubernetes' `getPatch` produces).
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut t {
        m.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({ "spec": { "template": t } })
}

/// The template stored in a revision (None when its data is not a template patch).
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// Whether a revision stores exactly this template.
pub fn matches(rev: &ControllerRevision, template: &PodTemplateSpec) -> bool {
    rev.data.as_ref().is_some_and(|d| {
        super::semantic::normalize(&d.0) == super::semantic::normalize(&template_patch(template))
    })
}

/// A new revision of `template` for `owner` (`<owner>-<hash>`); labels are the owner's selector
/// labels, as Kubernetes copies them.
pub fn new_revision(
    owner_meta: &ObjectMeta,
    owner_ref: OwnerReference,
    labels: BTreeMap<String, String>,
    template: &PodTemplateSpec,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let data = template_patch(template);
    let hash = compute_hash(&data, collision_count);
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}-{}",
                owner_meta.name.as_deref().unwrap_or(""),
                hash
            )),
            namespace: owner_meta.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// What to do about revisions for the current template.
#[derive(Debug, Clone, PartialEq)]
pub enum RevisionAction {
    /// The newest revision already stores the template.
    Current(String),
    /// An older revision stores it (a rollback): raise its number to this.
    Bump(String, i64),
    /// No revision stores it: create this one.
    Create(Box<ControllerRevision>),
}

/// Decide the update revision for `template` among `revisions`.
pub fn update_revision(
    revisions: &[&ControllerRevision],
    template: &PodTemplateSpec,
    make: impl FnOnce(i64) -> ControllerRevision,
) -> RevisionAction {
    let max = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let mut equal: Vec<&&ControllerRevision> =
        revisions.iter().filter(|r| matches(r, template)).collect();
    equal.sort_by_key(|r| r.revision);
    match equal.last() {
        Some(r) if r.revision == max => {
            RevisionAction::Current(r.metadata.name.clone().unwrap_or_default())
        }
        Some(r) => RevisionAction::Bump(r.metadata.name.clone().unwrap_or_default(), max + 1),
        None => RevisionAction::Create(Box::new(make(max + 1))),
    }
}

/// A write to a controller's revision history.
#[derive(Debug, Clone, PartialEq)]
pub enum RevisionStep {
    Create(Box<ControllerRevision>),
    /// Raise an existing revision's number (a rollback to an earlier template).
    Bump(String, i64),
    Delete(String),
}

/// The update revision's name for `template`, and the write that makes it current (if any).
pub fn resolve(
    revisions: &[&ControllerRevision],
    template: &PodTemplateSpec,
    make: impl FnOnce(i64) -> ControllerRevision,
) -> (String, Option<RevisionStep>) {
    match update_revision(revisions, template, make) {
        RevisionAction::Current(name) => (name, None),
        RevisionAction::Bump(name, n) => (name.clone(), Some(RevisionStep::Bump(name, n))),
        RevisionAction::Create(rev) => (
            rev.metadata.name.clone().unwrap_or_default(),
            Some(RevisionStep::Create(rev)),
        ),
    }
}

/// Apply a step to an in-memory history (the golden tests' apiserver).
pub fn apply_in_memory(history: &mut Vec<ControllerRevision>, step: &RevisionStep) {
    match step {
        RevisionStep::Create(r) => history.push((**r).clone()),
        RevisionStep::Bump(name, n) => {
            if let Some(r) = history
                .iter_mut()
                .find(|r| r.metadata.name.as_ref() == Some(name))
            {
                r.revision = *n;
            }
        }
        RevisionStep::Delete(name) => history.retain(|r| r.metadata.name.as_ref() != Some(name)),
    }
}

/// Revisions to delete beyond `limit`, oldest first, sparing those in `live` (names in use by pods
/// or the status).
pub fn history_to_delete(
    revisions: &[&ControllerRevision],
    live: &[String],
    limit: i32,
) -> Vec<String> {
    let mut candidates: Vec<&&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.iter().any(|l| Some(l) == r.metadata.name.as_ref()))
        .collect();
    let limit = limit.max(0) as usize;
    if candidates.len() <= limit {
        return Vec::new();
    }
    candidates.sort_by_key(|r| r.revision);
    let n = candidates.len() - limit;
    candidates[..n]
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn tpl(host: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                hostname: Some(host.into()),
                ..Default::default()
            }),
        }
    }

    fn rev(name: &str, t: &PodTemplateSpec, n: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(RawExtension(template_patch(t))),
            revision: n,
        }
    }

    #[test]
    fn data_round_trips_and_matches() {
        let t = tpl("a");
        let r = rev("x-1", &t, 1);
        assert_eq!(template_of(&r), Some(t.clone()));
        assert!(matches(&r, &t));
        assert!(!matches(&r, &tpl("b")));
        assert_eq!(
            r.data
                .as_ref()
                .map(|d| d.0["spec"]["template"]["$patch"].clone()),
            Some(json!("replace"))
        );
    }

    #[test]
    fn update_revision_current_bump_or_create() {
        let (a, b) = (tpl("a"), tpl("b"));
        let r1 = rev("s-a", &a, 1);
        let r2 = rev("s-b", &b, 2);
        let revs = [&r1, &r2];
        assert_eq!(
            update_revision(&revs, &b, |_| unreachable!()),
            RevisionAction::Current("s-b".into())
        );
        assert_eq!(
            update_revision(&revs, &a, |_| unreachable!()),
            RevisionAction::Bump("s-a".into(), 3)
        );
        let made = update_revision(&revs, &tpl("c"), |n| rev("s-c", &tpl("c"), n));
        assert!(matches!(made, RevisionAction::Create(r) if r.revision == 3));
        assert_eq!(
            history_to_delete(&revs, &["s-b".into()], 0),
            vec!["s-a".to_string()]
        );
        assert!(history_to_delete(&revs, &[], 2).is_empty());
    }
}
