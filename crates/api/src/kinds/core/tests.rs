use super::*;
use serde_json::json;

#[test]
fn secrets_merge_string_data_and_check_types() {
    let mut s: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "d"}, "stringData": {"user": "admin"},
        "data": {"pw": "c2VjcmV0"}}))
    .unwrap_or_default();
    s.default();
    let v = serde_json::to_value(&s).unwrap_or_default();
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v["data"], json!({"pw": "c2VjcmV0", "user": "YWRtaW4="}));
    assert!(v.get("stringData").is_none());
    let mut tls = s.clone();
    tls.type_ = Some("kubernetes.io/tls".into());
    let lines: Vec<String> = tls.validate().iter().map(Cause::to_line).collect();
    assert_eq!(
        lines,
        vec![
            "data[tls.crt]: Required value",
            "data[tls.key]: Required value"
        ]
    );
    assert_eq!(tls.validate_update(&s).len(), 3, "type is immutable");
}

#[test]
fn configmaps_namespaces_and_claims() {
    let cm: ConfigMap = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d"}, "data": {"bad/key": "v", "ok": "v"}}))
    .unwrap_or_default();
    assert_eq!(cm.validate()[0].field, "data[bad/key]");
    let mut frozen = cm.clone();
    frozen.data = Some([("ok".to_string(), "v".to_string())].into());
    frozen.immutable = Some(true);
    let mut changed = frozen.clone();
    changed.data = Some([("ok".to_string(), "w".to_string())].into());
    assert_eq!(changed.validate_update(&frozen)[0].field, "data");

    let mut ns: Namespace = serde_json::from_value(json!({"apiVersion": "v1",
        "kind": "Namespace", "metadata": {"name": "team-a"}}))
    .unwrap_or_default();
    ns.default();
    ns.prepare_create();
    let v = serde_json::to_value(&ns).unwrap_or_default();
    assert_eq!(v["metadata"]["labels"][NAMESPACE_NAME_LABEL], "team-a");
    assert_eq!(v["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(v["status"]["phase"], "Active");

    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({"apiVersion": "v1",
        "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "d"},
        "spec": {"accessModes": ["ReadWriteOnce"]}}))
    .unwrap_or_default();
    let lines: Vec<String> = pvc.validate().iter().map(Cause::to_line).collect();
    assert_eq!(lines, vec!["spec.resources[storage]: Required value"]);
}
