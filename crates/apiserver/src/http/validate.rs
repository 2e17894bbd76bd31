//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`): fields the kind's schema
//! does not declare, and fields given twice, reported as Kubernetes' strict decoder reports them:
//! `Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field
//! "spec.foo", duplicate field "metadata.name"`.

use niwa_api::{ApiError, ResourceInfo};
use serde_json::Value;

use super::openapi::{Schemas, schemas};
use super::params::Validation;

/// The unknown fields of `obj` (paths like `spec.containers[0].foo`) against the schema of
/// `info`'s kind. Keys starting with `$` (strategic merge patch directives) are not fields.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let s = schemas();
    let Some(name) = s.kind_schema(info.group, info.version, info.kind) else {
        return Vec::new();
    };
    let Some(schema) = s.components.get(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(s, schema, obj, "", &mut out);
    out
}

fn walk(s: &Schemas, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let schema = s.resolve(schema);
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return;
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if k.starts_with('$') {
                    continue;
                }
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    walk(s, p, child, &child_path, out);
                } else if let Some(a) = additional {
                    walk(s, a, child, &child_path, out);
                } else if props.is_some() {
                    out.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(s, item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Applies the directive to a decoded body: `Err` for Strict with problems, the warnings to send
/// for Warn, nothing for Ignore.
pub fn check(
    info: &ResourceInfo,
    obj: &Value,
    duplicates: &[String],
    validation: Validation,
) -> Result<Vec<String>, ApiError> {
    if validation == Validation::Ignore {
        return Ok(Vec::new());
    }
    let mut problems: Vec<String> = unknown_fields(info, obj)
        .into_iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    problems.extend(duplicates.iter().map(|f| format!("duplicate field {f:?}")));
    if problems.is_empty() {
        return Ok(Vec::new());
    }
    match validation {
        Validation::Strict => Err(ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            problems.join(", "),
            kind = info.kind,
            version = info.version,
        ))),
        _ => Ok(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::Registry;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let Some(pods) = Registry.resolve("pods") else {
            panic!("pods");
        };
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "labels": {"x": "y"}, "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always",
                "resources": {"limits": {"cpu": "1"}}, "foo": true}],
                "$setElementOrder/containers": [{"name": "c"}]},
            "status": {}});
        assert_eq!(
            unknown_fields(pods, &pod),
            vec![
                "metadata.bogus".to_string(),
                "spec.containers[0].foo".to_string()
            ]
        );
        let err = check(pods, &pod, &["metadata.name".into()], Validation::Strict)
            .err()
            .map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.containers[0].foo\", duplicate field \"metadata.name\""
            )
        );
        let warnings = check(pods, &pod, &[], Validation::Warn).unwrap_or_default();
        assert_eq!(warnings.len(), 2);
        assert!(
            check(pods, &pod, &[], Validation::Ignore)
                .unwrap_or_default()
                .is_empty()
        );
    }

    #[test]
    fn maps_and_free_form_fields_are_not_unknown() {
        let Some(cms) = Registry.resolve("configmaps") else {
            panic!("configmaps");
        };
        let cm = json!({"metadata": {"name": "a", "annotations": {"any/key": "v"}},
            "data": {"anything": "x"}, "binaryData": {"b": "AA=="}});
        assert!(unknown_fields(cms, &cm).is_empty());
    }
}
