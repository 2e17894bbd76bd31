//! ObjectMeta validation (apimachinery `ValidateObjectMeta`): name or generateName, namespace,
//! labels and annotations, each problem reported as a field cause.

use serde_json::Value;

use super::field::{self, Bad, Path};
use super::names;
use crate::status::Cause;

/// Which syntax object names of a kind must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// DNS-1123 label: Namespaces (their names become DNS labels).
    Label,
    /// DNS-1035 label: Services (a label that starts with a letter).
    Dns1035,
}

/// Kubernetes' limit on the total size of annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn check_name(rule: NameRule, value: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::dns1123_subdomain(value),
        NameRule::Label => names::dns1123_label(value),
        NameRule::Dns1035 => names::dns1035_label(value),
    }
}

/// Validates `metadata` of `obj`; `namespaced` says whether the kind lives in namespaces.
pub fn validate_meta(obj: &Value, namespaced: bool, rule: NameRule) -> Vec<Cause> {
    let mut causes = Vec::new();
    let md = &obj["metadata"];
    let name = md["name"].as_str().unwrap_or_default();
    let generate = md["generateName"].as_str().unwrap_or_default();
    if name.is_empty() {
        if generate.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            });
        }
    } else {
        for problem in check_name(rule, name) {
            causes.push(Cause::invalid("metadata.name", name, &problem));
        }
    }
    let namespace = md["namespace"].as_str().unwrap_or_default();
    if namespaced {
        if namespace.is_empty() {
            causes.push(Cause::required("metadata.namespace"));
        } else {
            for problem in names::dns1123_label(namespace) {
                causes.push(Cause::invalid("metadata.namespace", namespace, &problem));
            }
        }
    } else if !namespace.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    causes.extend(validate_labels(&md["labels"], "metadata.labels"));
    causes.extend(validate_finalizers(&md["finalizers"]));
    causes.extend(validate_owner_references(&md["ownerReferences"]));
    if let Some(annotations) = md["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
            for problem in names::qualified_name(&k.to_ascii_lowercase()) {
                causes.push(Cause::invalid("metadata.annotations", k, &problem));
            }
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!(
                    "Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"
                ),
                field: "metadata.annotations".into(),
            });
        }
    }
    causes
}

/// Finalizers Kubernetes itself defines; any other must be domain-qualified (`example.com/x`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

fn validate_finalizers(finalizers: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let path = Path::new("metadata").child("finalizers");
    let mut seen = std::collections::BTreeSet::new();
    for (i, f) in finalizers.as_array().into_iter().flatten().enumerate() {
        let name = f.as_str().unwrap_or_default();
        let problems = names::qualified_name(name);
        if !problems.is_empty() {
            for problem in problems {
                causes.push(field::invalid(&path.index(i), name, &problem));
            }
        } else if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
            causes.push(field::invalid(
                &path.index(i),
                name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
        if !seen.insert(name) {
            causes.push(field::duplicate(&path.index(i), name));
        }
    }
    causes
}

fn validate_owner_references(refs: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let path = Path::new("metadata").child("ownerReferences");
    let mut controllers = 0;
    for (i, r) in refs.as_array().into_iter().flatten().enumerate() {
        let p = path.index(i);
        for key in ["apiVersion", "kind", "name", "uid"] {
            if r[key].as_str().unwrap_or_default().is_empty() {
                let detail = match key {
                    "apiVersion" => "version must not be empty",
                    "kind" => "kind must not be empty",
                    "name" => "name must not be empty",
                    _ => "uid must not be empty",
                };
                causes.push(field::invalid(&p.child(key), "", detail));
            }
        }
        if r["controller"].as_bool() == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        causes.push(field::invalid(
            &path,
            Bad::Raw(refs.to_string()),
            "Only one reference can have Controller set to true",
        ));
    }
    causes
}

/// `ValidateObjectMetaUpdate`: identity fields never change (the REST layer keeps them; this
/// catches a body that tries).
pub fn validate_meta_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let md = Path::new("metadata");
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let (n, o) = (&new["metadata"][key], &old["metadata"][key]);
        if !o.is_null() && n != o {
            let shown = n.as_str().unwrap_or_default();
            causes.push(field::invalid(&md.child(key), shown, field::IMMUTABLE));
        }
    }
    causes
}

/// Label keys must be qualified names and values label values (also used for selectors' labels).
pub fn validate_labels(labels: &Value, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(map) = labels.as_object() {
        for (k, v) in map {
            for problem in names::qualified_name(k) {
                causes.push(Cause::invalid(field, k, &problem));
            }
            let value = v.as_str().unwrap_or_default();
            for problem in names::label_value(value) {
                causes.push(Cause::invalid(field, value, &problem));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_bad_field() {
        let obj = json!({"metadata": {"name": "Bad_Name", "namespace": "default",
            "labels": {"ok": "v", "bad key": "x", "k": "bad value"}}});
        let fields: Vec<String> = validate_meta(&obj, true, NameRule::Subdomain)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            vec!["metadata.name", "metadata.labels", "metadata.labels"]
        );
        let ok = json!({"metadata": {"generateName": "web-", "namespace": "default"}});
        assert!(validate_meta(&ok, true, NameRule::Subdomain).is_empty());
        let missing = json!({"metadata": {}});
        assert_eq!(validate_meta(&missing, false, NameRule::Label).len(), 1);
        let svc = json!({"metadata": {"name": "a.b", "namespace": "x"}});
        assert_eq!(validate_meta(&svc, true, NameRule::Label).len(), 1);
    }
}
