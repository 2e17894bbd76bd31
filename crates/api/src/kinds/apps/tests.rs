use super::*;
use serde_json::{Value, json};

fn deploy(spec: Value) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"}, "spec": spec}))
    .unwrap_or_default()
}

fn lines(causes: &[Cause]) -> Vec<String> {
    causes.iter().map(Cause::to_line).collect()
}

#[test]
fn deployment_defaults() {
    let mut d = deploy(json!({"selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}));
    d.default();
    assert!(d.validate().is_empty(), "{:?}", d.validate());
    let v = serde_json::to_value(&d).unwrap_or_default();
    assert_eq!(v["spec"]["replicas"], 1);
    assert_eq!(
        v["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(v["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        v["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
}

#[test]
fn deployment_errors_as_kubernetes_words_them() {
    let mut d = deploy(json!({"replicas": -1,
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}));
    d.default();
    assert_eq!(
        lines(&d.validate()),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ]
    );
}

#[test]
fn selector_is_immutable() {
    let make = |app: &str| {
        let mut d = deploy(json!({"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}));
        d.default();
        d
    };
    let causes = make("b").validate_update(&make("a"));
    assert_eq!(
        lines(&causes),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
}

#[test]
fn statefulset_and_daemonset_defaults() {
    let mut s: StatefulSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
        "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "d"},
        "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    .unwrap_or_default();
    s.default();
    assert!(s.validate().is_empty());
    let v = serde_json::to_value(&s).unwrap_or_default();
    assert_eq!(v["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        v["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        v["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    let mut changed = s.clone();
    if let Some(spec) = changed.spec.as_mut() {
        spec.service_name = Some("other".into());
    }
    assert_eq!(changed.validate_update(&s).len(), 1);

    // Containers may mount the claim templates; other names must be volumes.
    let mounting = |mount: &str| -> StatefulSet {
        let mut s: StatefulSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
            "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "d"},
            "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x",
                        "volumeMounts": [{"name": mount, "mountPath": "/data"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}))
        .unwrap_or_default();
        s.default();
        s
    };
    assert!(mounting("data").validate().is_empty());
    let lines: Vec<String> = mounting("nope")
        .validate()
        .iter()
        .map(Cause::to_line)
        .collect();
    assert_eq!(
        lines,
        ["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"nope\""]
    );

    let mut ds: DaemonSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
        "kind": "DaemonSet", "metadata": {"name": "s", "namespace": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    .unwrap_or_default();
    ds.default();
    assert!(ds.validate().is_empty());
    let v = serde_json::to_value(&ds).unwrap_or_default();
    assert_eq!(
        v["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    );
}

#[test]
fn rolling_update_bounds_of_deployments_and_daemonsets() {
    let template = json!({"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}});
    let mut d = deploy(
        json!({"selector": {"matchLabels": {"a": "b"}}, "template": template,
        "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "150%", "maxSurge": "150%"}}}),
    );
    d.default();
    assert_eq!(
        lines(&d.validate()),
        [
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
        ]
    );
    let ds = |ru: Value| {
        let mut ds: DaemonSet = serde_json::from_value(json!({"apiVersion": "apps/v1",
            "kind": "DaemonSet", "metadata": {"name": "s", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template,
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}}}))
        .unwrap_or_default();
        ds.default();
        lines(&ds.validate())
    };
    assert_eq!(
        ds(json!({"maxUnavailable": 1, "maxSurge": "150%"})),
        [
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: \"150%\": must not be greater than 100%",
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: \"150%\": may not be set when maxUnavailable is non-zero",
        ]
    );
    assert_eq!(
        ds(json!({"maxUnavailable": "0%", "maxSurge": 0})),
        [
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"
        ]
    );
    assert!(ds(json!({"maxUnavailable": 0, "maxSurge": "10%"})).is_empty());
}
