//! The official Kubernetes Python client (`pip install kubernetes`, installed by
//! scripts/install-deps) against niwa: CRUD, patches, the scale subresource, errors, and a watch.

mod kubectl_common;

use std::time::Duration;

use kubectl_common::Cluster;

const SCRIPT: &str = r#"
import os, sys, threading, time
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
v1 = client.CoreV1Api()
apps = client.AppsV1Api()
meta = client.V1ObjectMeta
ns = "py"

v1.create_namespace(client.V1Namespace(metadata=meta(name=ns)))
cm = client.V1ConfigMap(metadata=meta(name="c1", labels={"app": "py"}), data={"k": "v"})
created = v1.create_namespaced_config_map(ns, cm)
assert created.metadata.uid and created.metadata.resource_version, created
got = v1.read_namespaced_config_map("c1", ns)
assert got.data == {"k": "v"}, got.data
names = [i.metadata.name for i in v1.list_namespaced_config_map(ns, label_selector="app=py").items]
assert names == ["c1"], names
assert v1.list_namespaced_config_map(ns, label_selector="app=other").items == []

got.data["k"] = "v2"
assert v1.replace_namespaced_config_map("c1", ns, got).data == {"k": "v2"}
patched = v1.patch_namespaced_config_map("c1", ns, {"data": {"x": "y"}},
                                         _content_type="application/merge-patch+json")
assert patched.data == {"k": "v2", "x": "y"}, patched.data
patched = v1.patch_namespaced_config_map("c1", ns, [{"op": "remove", "path": "/data/x"}])
assert patched.data == {"k": "v2"}, patched.data

try:
    v1.create_namespaced_config_map(ns, cm)
    sys.exit("expected AlreadyExists")
except ApiException as e:
    assert e.status == 409, e
try:
    stale = v1.read_namespaced_config_map("c1", ns)
    v1.patch_namespaced_config_map("c1", ns, {"data": {"z": "1"}},
                                   _content_type="application/merge-patch+json")
    v1.replace_namespaced_config_map("c1", ns, stale)
    sys.exit("expected Conflict")
except ApiException as e:
    assert e.status == 409, e

dep = client.V1Deployment(
    metadata=meta(name="d"),
    spec=client.V1DeploymentSpec(
        replicas=1,
        selector=client.V1LabelSelector(match_labels={"app": "py"}),
        template=client.V1PodTemplateSpec(
            metadata=meta(labels={"app": "py"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]))))
apps.create_namespaced_deployment(ns, dep)
assert apps.read_namespaced_deployment_scale("d", ns).spec.replicas == 1
apps.patch_namespaced_deployment_scale("d", ns, {"spec": {"replicas": 3}},
                                       _content_type="application/merge-patch+json")
assert apps.read_namespaced_deployment("d", ns).spec.replicas == 3

events = []
def writer():
    time.sleep(1)
    v1.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=meta(name="c2")))
    v1.delete_namespaced_config_map("c2", ns)
threading.Thread(target=writer).start()
w = watch.Watch()
for ev in w.stream(v1.list_namespaced_config_map, namespace=ns, timeout_seconds=20):
    events.append((ev["type"], ev["object"].metadata.name))
    if ev["type"] == "DELETED":
        w.stop()
for want in [("ADDED", "c1"), ("ADDED", "c2"), ("DELETED", "c2")]:
    assert want in events, events

status = v1.delete_namespaced_config_map("c1", ns)
status = status if isinstance(status, dict) else status.to_dict()
assert status["status"] == "Success", status
try:
    v1.read_namespaced_config_map("c1", ns)
    sys.exit("expected NotFound")
except ApiException as e:
    assert e.status == 404 and "configmaps \\\"c1\\\" not found" in str(e.body), (e, e.body)
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_crud_and_watch() {
    let c = Cluster::start().await;
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("-c")
        .arg(SCRIPT)
        .env("KUBECONFIG", &c.kubeconfig)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the Python client finished within 60 s")
        .expect("python3 runs (scripts/install-deps installs the kubernetes package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "python client failed:\n{stdout}\n{stderr}"
    );
}
