//! IngressClass `niwa`: which Ingresses are ours, and the class object niwa installs (marked the
//! cluster's default, so Ingresses without a class are served too).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressClassSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const DEFAULT_CLASS_NAME: &str = "niwa";
/// `spec.controller` of niwa's IngressClass.
pub const CONTROLLER_NAME: &str = "niwa.dev/ingress-controller";
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The pre-IngressClass way of choosing a controller, still honoured by most controllers.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The IngressClass object niwa creates when it is missing.
pub fn ingress_class(name: &str, default: bool) -> IngressClass {
    let annotations = default
        .then(|| BTreeMap::from([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())]));
    IngressClass {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Some(IngressClassSpec {
            controller: Some(CONTROLLER_NAME.to_string()),
            parameters: None,
        }),
    }
}

/// Whether `class` is marked as the cluster's default.
pub fn is_default(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether we serve `ingress`: its `ingressClassName` (or legacy annotation) names our class, or
/// it names none and our class is the default.
pub fn is_ours(ingress: &Ingress, class_name: &str, ours_is_default: bool) -> bool {
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        });
    match named {
        Some(name) => name == class_name,
        None => ours_is_default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ing(value: serde_json::Value) -> Ingress {
        serde_json::from_value(value).expect("ingress")
    }

    #[test]
    fn class_selection() {
        let named = ing(json!({"metadata": {"name": "a"}, "spec": {"ingressClassName": "niwa"}}));
        let other = ing(json!({"metadata": {"name": "a"}, "spec": {"ingressClassName": "nginx"}}));
        let legacy = ing(json!({"metadata": {"name": "a",
            "annotations": {"kubernetes.io/ingress.class": "niwa"}}, "spec": {}}));
        let none = ing(json!({"metadata": {"name": "a"}, "spec": {}}));
        assert!(is_ours(&named, "niwa", false));
        assert!(!is_ours(&other, "niwa", true));
        assert!(is_ours(&legacy, "niwa", false));
        assert!(is_ours(&none, "niwa", true));
        assert!(!is_ours(&none, "niwa", false));
        let class = ingress_class("niwa", true);
        assert!(is_default(&class));
        assert!(!is_default(&ingress_class("niwa", false)));
    }
}
