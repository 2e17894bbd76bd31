//! ObjectMeta validation (apimachinery `ValidateObjectMeta`): name or generateName, namespace,
//! labels and annotations, each problem reported as a field cause.

use serde_json::Value;

use super::names;
use crate::status::Cause;

/// Which syntax object names of a kind must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// DNS-1123 label: Namespaces and Services (their names become DNS labels).
    Label,
}

/// Kubernetes' limit on the total size of annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn check_name(rule: NameRule, value: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::dns1123_subdomain(value),
        NameRule::Label => names::dns1123_label(value),
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
