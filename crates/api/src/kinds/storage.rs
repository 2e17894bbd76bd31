//! storage.k8s.io/v1 StorageClasses (`pkg/apis/storage/validation`, `SetDefaults_StorageClass`),
//! and the default-class rules the `DefaultStorageClass` admission plugin and the volume
//! controllers share (`storage/util.IsDefaultAnnotation`, `GetDefaultClass`).

use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Strategy, or_str};
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::names;

/// The annotation that marks the cluster's default StorageClass (value `"true"`).
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta spelling, still honoured by Kubernetes.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";

const RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];
/// `maxProvisionerParameterLen` and `maxProvisionerParameterSize`.
const MAX_PARAMETERS: usize = 512;
const MAX_PARAMETERS_SIZE: usize = 256 * 1024;

/// Whether the object carries the default-class annotation set to `"true"` (either spelling).
pub fn is_default_annotation(meta: &ObjectMeta) -> bool {
    meta.annotations.as_ref().is_some_and(|a| {
        [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
            .iter()
            .any(|k| a.get(*k).map(String::as_str) == Some("true"))
    })
}

/// The default class among `classes` (`GetDefaultClass`): of those marked default, the newest by
/// creationTimestamp, then the first by name — so adding a second default class takes over
/// without deleting the first, as in Kubernetes ≥ 1.26.
pub fn default_class<'a>(classes: &[&'a StorageClass]) -> Option<&'a StorageClass> {
    classes
        .iter()
        .copied()
        .filter(|c| is_default_annotation(&c.metadata))
        .min_by(|a, b| {
            let created = |c: &StorageClass| c.metadata.creation_timestamp.clone().map(|t| t.0);
            created(b)
                .cmp(&created(a))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        })
}

fn validate_provisioner(provisioner: &str) -> Vec<Cause> {
    let path = Path::new("provisioner");
    if provisioner.is_empty() {
        return vec![field::required(&path, "")];
    }
    names::qualified_name(&provisioner.to_ascii_lowercase())
        .iter()
        .map(|problem| field::invalid(&path, provisioner, problem))
        .collect()
}

fn validate_parameters(class: &StorageClass) -> Vec<Cause> {
    let path = Path::new("parameters");
    let Some(params) = &class.parameters else {
        return Vec::new();
    };
    if params.len() > MAX_PARAMETERS {
        return vec![field::too_long(&path, MAX_PARAMETERS)];
    }
    let mut causes = Vec::new();
    let mut size = 0;
    for (k, v) in params {
        if k.is_empty() {
            causes.push(field::invalid(&path, k, "field can not be empty."));
        }
        size += k.len() + v.len();
    }
    if size > MAX_PARAMETERS_SIZE {
        causes.push(field::too_long(&path, MAX_PARAMETERS_SIZE));
    }
    causes
}

impl Strategy for StorageClass {
    fn default(&mut self) {
        or_str(&mut self.reclaim_policy, "Delete");
        or_str(&mut self.volume_binding_mode, "Immediate");
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = validate_provisioner(&self.provisioner);
        causes.extend(validate_parameters(self));
        if let Some(p) = self.reclaim_policy.as_deref()
            && !p.is_empty()
            && !RECLAIM_POLICIES.contains(&p)
        {
            causes.push(field::not_supported(
                &Path::new("reclaimPolicy"),
                p,
                RECLAIM_POLICIES,
            ));
        }
        match self.volume_binding_mode.as_deref() {
            None => causes.push(field::required(&Path::new("volumeBindingMode"), "")),
            Some(m) if !BINDING_MODES.contains(&m) => causes.push(field::not_supported(
                &Path::new("volumeBindingMode"),
                m,
                BINDING_MODES,
            )),
            Some(_) => {}
        }
        for (i, term) in self.allowed_topologies.iter().flatten().enumerate() {
            let p = Path::new("allowedTopologies").index(i);
            let exprs = &term.match_label_expressions;
            if exprs.as_ref().is_none_or(Vec::is_empty) {
                causes.push(field::required(
                    &p.child("matchLabelExpressions"),
                    "must contain at least one key/value pair",
                ));
            }
            for (j, e) in exprs.iter().flatten().enumerate() {
                let ep = p.child("matchLabelExpressions").index(j);
                for problem in names::qualified_name(&e.key) {
                    causes.push(field::invalid(&ep.child("key"), e.key.as_str(), &problem));
                }
                if e.values.is_empty() {
                    causes.push(field::required(
                        &ep.child("values"),
                        "must specify as least one value",
                    ));
                }
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        if self.parameters.clone().unwrap_or_default() != old.parameters.clone().unwrap_or_default()
        {
            causes.push(field::forbidden(
                &Path::new("parameters"),
                "updates to parameters are forbidden.",
            ));
        }
        if self.provisioner != old.provisioner {
            causes.push(field::forbidden(
                &Path::new("provisioner"),
                "updates to provisioner are forbidden.",
            ));
        }
        if self.reclaim_policy != old.reclaim_policy {
            causes.push(field::forbidden(
                &Path::new("reclaimPolicy"),
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        let mode = self.volume_binding_mode.clone().unwrap_or_default();
        causes.extend(field::immutable(
            &Path::new("volumeBindingMode"),
            &self.volume_binding_mode,
            &old.volume_binding_mode,
            mode,
        ));
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(v: serde_json::Value) -> StorageClass {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn lines(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::to_line).collect()
    }

    #[test]
    fn defaults_as_kubernetes() {
        let mut c =
            class(json!({"metadata": {"name": "fast"}, "provisioner": "rancher.io/local-path"}));
        c.default();
        assert_eq!(c.reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(c.volume_binding_mode.as_deref(), Some("Immediate"));
        assert!(c.validate().is_empty());
        let mut kept = class(
            json!({"metadata": {"name": "keep"}, "provisioner": "x.io/y",
            "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}),
        );
        kept.default();
        assert_eq!(kept.reclaim_policy.as_deref(), Some("Retain"));
        assert_eq!(
            kept.volume_binding_mode.as_deref(),
            Some("WaitForFirstConsumer")
        );
    }

    #[test]
    fn validation_messages() {
        let mut c = class(json!({"metadata": {"name": "bad"}, "provisioner": "",
            "reclaimPolicy": "Recycle", "volumeBindingMode": "Later", "parameters": {"": "x"}}));
        c.default();
        assert_eq!(
            lines(&c.validate()),
            vec![
                "provisioner: Required value",
                "parameters: Invalid value: \"\": field can not be empty.",
                "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
                "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
            ]
        );
        let bad_name = class(json!({"metadata": {"name": "p"}, "provisioner": "a/b/c",
            "volumeBindingMode": "Immediate"}));
        assert!(!bad_name.validate().is_empty());
    }

    #[test]
    fn updates_may_not_change_the_provisioning() {
        let mut old = class(json!({"metadata": {"name": "c"}, "provisioner": "a.io/b",
            "parameters": {"k": "v"}}));
        old.default();
        let mut new = old.clone();
        new.provisioner = "c.io/d".into();
        new.parameters = None;
        new.reclaim_policy = Some("Retain".into());
        new.volume_binding_mode = Some("WaitForFirstConsumer".into());
        assert_eq!(
            lines(&new.validate_update(&old)),
            vec![
                "parameters: Forbidden: updates to parameters are forbidden.",
                "provisioner: Forbidden: updates to provisioner are forbidden.",
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
                "volumeBindingMode: Invalid value: \"WaitForFirstConsumer\": field is immutable",
            ]
        );
        let mut relabelled = old.clone();
        relabelled.allow_volume_expansion = Some(true);
        assert!(relabelled.validate_update(&old).is_empty());
    }

    #[test]
    fn the_newest_default_class_wins() {
        let a = class(
            json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}, "provisioner": "x.io/a"}),
        );
        let b = class(
            json!({"metadata": {"name": "b", "creationTimestamp": "2026-02-01T00:00:00Z",
            "annotations": {BETA_DEFAULT_CLASS_ANNOTATION: "true"}}, "provisioner": "x.io/b"}),
        );
        let c = class(
            json!({"metadata": {"name": "c", "creationTimestamp": "2026-03-01T00:00:00Z",
            "annotations": {DEFAULT_CLASS_ANNOTATION: "false"}}, "provisioner": "x.io/c"}),
        );
        let d = class(
            json!({"metadata": {"name": "0d", "creationTimestamp": "2026-02-01T00:00:00Z",
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}, "provisioner": "x.io/d"}),
        );
        let name = |v: &[&StorageClass]| default_class(v).and_then(|c| c.metadata.name.clone());
        assert_eq!(name(&[&a, &c]).as_deref(), Some("a"));
        assert_eq!(name(&[&a, &b, &c]).as_deref(), Some("b"));
        assert_eq!(name(&[&a, &b, &d]).as_deref(), Some("0d"));
        assert_eq!(name(&[&c]), None);
    }
}
