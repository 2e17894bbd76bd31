//! `metav1.LabelSelector` as workload kinds use it: validation (`ValidateLabelSelector`), matching a
//! template's labels, and Go's rendering of a selector inside an error message.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::selector::LabelSelector as Parsed;
use crate::status::Cause;
use crate::validation::field::{self, Bad, Path, go_quote};
use crate::validation::meta::validate_labels;
use crate::validation::names;

/// `ValidateLabelSelector`.
pub fn validate(selector: &LabelSelector, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => causes.push(field::required(
                &p.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => causes.push(field::forbidden(
                &p.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(field::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for problem in names::qualified_name(&expr.key) {
            causes.push(field::invalid(&p.child("key"), expr.key.as_str(), &problem));
        }
        for (j, v) in values.iter().enumerate() {
            for problem in names::label_value(v) {
                causes.push(field::invalid(
                    &p.child("values").index(j),
                    v.as_str(),
                    &problem,
                ));
            }
        }
    }
    if let Some(labels) = &selector.match_labels {
        let as_json = serde_json::to_value(labels).unwrap_or_default();
        causes.extend(validate_labels(
            &as_json,
            path.child("matchLabels").as_str(),
        ));
    }
    causes
}

/// Whether the selector has no requirement at all (it would select everything).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether `labels` satisfy `selector` (an invalid selector matches nothing).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Parsed::from_api(Some(selector)).is_ok_and(|s| s.matches(labels))
}

/// The workload rule: a non-empty selector that the template's labels satisfy. Causes name
/// `<spec>.selector` and `<spec>.template.metadata.labels`, worded as apps validation words them.
pub fn validate_against_template(
    selector: Option<&LabelSelector>,
    template_labels: Option<&BTreeMap<String, String>>,
    spec: &Path,
    empty_detail: &str,
) -> Vec<Cause> {
    let Some(selector) = selector else {
        return vec![field::required(&spec.child("selector"), "")];
    };
    let mut causes = validate(selector, &spec.child("selector"));
    if is_empty(selector) {
        causes.push(field::invalid(
            &spec.child("selector"),
            render(selector),
            empty_detail,
        ));
        return causes;
    }
    let empty = BTreeMap::new();
    let labels = template_labels.unwrap_or(&empty);
    if causes.is_empty() && !matches(selector, labels) {
        causes.push(field::invalid(
            &spec.child("template").child("metadata").child("labels"),
            field::go_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    causes
}

/// Go's `%#v` of a `v1.LabelSelector`, as immutability errors print it.
pub fn render(selector: &LabelSelector) -> Bad {
    let labels = match &selector.match_labels {
        Some(m) => field::go_map(m).to_string(),
        None => "map[string]string(nil)".into(),
    };
    let exprs = match &selector.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values: Vec<String> =
                        e.values.iter().flatten().map(|v| go_quote(v)).collect();
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:[]string{{{}}}}}",
                        go_quote(&e.key),
                        go_quote(&e.operator),
                        values.join(", ")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    Bad::Raw(format!(
        "v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(json: serde_json::Value) -> LabelSelector {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn template_must_match() {
        let spec = Path::new("spec");
        let s = sel(serde_json::json!({"matchLabels": {"app": "web"}}));
        let ok: BTreeMap<String, String> = [("app".into(), "web".into())].into();
        assert!(validate_against_template(Some(&s), Some(&ok), &spec, "empty").is_empty());
        let bad: BTreeMap<String, String> = [("app".into(), "db".into())].into();
        let causes = validate_against_template(Some(&s), Some(&bad), &spec, "empty");
        assert_eq!(
            causes[0].to_line(),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`"
        );
        let causes = validate_against_template(None, Some(&ok), &spec, "empty");
        assert_eq!(causes[0].to_line(), "spec.selector: Required value");
        let expr = sel(serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In"}]}));
        assert_eq!(
            validate(&expr, &spec.child("selector"))[0].field,
            "spec.selector.matchExpressions[0].values"
        );
        assert_eq!(
            render(&s).to_string(),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
