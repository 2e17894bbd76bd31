use super::*;
use serde_json::{Value, json};

fn pod(spec: Value) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"}, "spec": spec}))
    .unwrap_or_default()
}

fn lines(causes: &[Cause]) -> Vec<String> {
    causes.iter().map(Cause::to_line).collect()
}

#[test]
fn defaults_match_kubernetes() {
    let mut p = pod(json!({"containers": [{"name": "web", "image": "nginx",
        "ports": [{"containerPort": 80}],
        "readinessProbe": {"httpGet": {"port": 80}},
        "resources": {"limits": {"cpu": "1"}}}],
        "volumes": [{"name": "data"}, {"name": "cfg", "configMap": {"name": "c"}}]}));
    p.default();
    p.prepare_create();
    let v = serde_json::to_value(&p).unwrap_or_default();
    let spec = &v["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(2));
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
    assert_eq!(c["resources"]["requests"]["cpu"], "1");
    assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    assert_eq!(v["status"]["phase"], "Pending");
    assert_eq!(v["status"]["qosClass"], "Burstable");
    assert_eq!(pull_policy_for("nginx:1.27"), "IfNotPresent");
    assert_eq!(pull_policy_for("localhost:5000/app"), "Always");
    assert_eq!(pull_policy_for("app@sha256:abc"), "IfNotPresent");
}

#[test]
fn every_bad_field_is_named() {
    let mut p = pod(json!({"restartPolicy": "Sometimes", "containers": [
        {"name": "a", "image": "x", "ports": [
            {"name": "http", "containerPort": 70000},
            {"name": "http", "containerPort": 81, "protocol": "XTP"}]},
        {"name": "a", "volumeMounts": [{"name": "nope", "mountPath": "/x"}],
         "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}));
    p.default();
    assert_eq!(
        lines(&p.validate()),
        vec![
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"XTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[1].image: Required value",
            "spec.containers[1].volumeMounts[0].name: Not found: \"nope\"",
            "spec.containers[1].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[1].name: Duplicate value: \"a\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]
    );
    let mut empty = pod(json!({"containers": []}));
    empty.default();
    assert_eq!(
        lines(&empty.validate()),
        vec!["spec.containers: Required value"]
    );
}

#[test]
fn pod_updates_only_change_images_and_deadlines() {
    let mut old = pod(json!({"containers": [{"name": "a", "image": "x:1"}]}));
    old.default();
    let mut new = old.clone();
    if let Some(c) = new.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.image = Some("x:2".into());
    }
    assert!(new.validate_update(&old).is_empty());
    if let Some(s) = new.spec.as_mut() {
        s.restart_policy = Some("Never".into());
    }
    let causes = new.validate_update(&old);
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0]
            .message
            .starts_with("Forbidden: pod updates may not change fields")
    );
}
