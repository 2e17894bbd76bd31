//! The built `niwa` binary against a real store + apiserver: apply, get, delete as a user runs
//! them.

use std::process::Stdio;
use std::time::Duration;

use niwa_client::k8s::api::core::v1::{ConfigMap, Service};
use niwa_client::{Api, Patch, ResourceExt};
use niwa_testkit::ControlPlane;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn niwa_cmd(server: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_niwa"));
    cmd.args(args)
        .env("NIWA_SERVER", server)
        .env_remove("NIWA_NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn niwa_at(server: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = niwa_cmd(server, args).spawn().expect("niwa runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("niwa finishes within 30 s")
        .expect("niwa output");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn niwa(cp: &ControlPlane, args: &[&str]) -> Run {
    niwa_at(&cp.api_url(), args, None).await
}

fn ok(run: &Run) -> &str {
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    &run.stdout
}

const MANIFEST: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team
data:
  mode: fast
  level: \"3\"
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: team
spec:
  selector:
    app: api
  ports:
  - port: 80
    targetPort: 8080
";

#[tokio::test]
async fn apply_creates_configures_and_leaves_unchanged() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, MANIFEST).expect("write");
    let path = file.display().to_string();

    let first = niwa(&cp, &["apply", "-f", &path]).await;
    assert_eq!(
        ok(&first),
        "namespace/team created\nconfigmap/settings created\nservice/api created\n"
    );

    // The server allocated a ClusterIP and someone else labelled the ConfigMap: re-applying the
    // same manifest changes nothing.
    let cms: Api<ConfigMap> = cp.client().namespaced("team");
    cms.patch(
        "settings",
        &Patch::Merge(json!({"metadata": {"labels": {"owner": "ops"}}})),
    )
    .await
    .expect("label");
    let second = niwa(&cp, &["apply", "-f", &path]).await;
    assert_eq!(
        ok(&second),
        "namespace/team unchanged\nconfigmap/settings unchanged\nservice/api unchanged\n"
    );
    let svc: Service = cp
        .client()
        .namespaced::<Service>("team")
        .get("api")
        .await
        .expect("service");
    let cluster_ip = svc.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    assert!(cluster_ip.starts_with("127.96."), "{cluster_ip}");

    // Drop a key and change another: configured, the dropped key is gone, foreign label kept.
    std::fs::write(
        &file,
        MANIFEST
            .replace("  level: \"3\"\n", "")
            .replace("fast", "slow"),
    )
    .expect("write");
    let third = niwa(&cp, &["apply", "-f", &path]).await;
    assert!(
        ok(&third).contains("configmap/settings configured"),
        "{}",
        third.stdout
    );
    let cm = cms.get("settings").await.expect("cm");
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(data.get("mode").map(String::as_str), Some("slow"));
    assert!(!data.contains_key("level"));
    assert_eq!(cm.labels().get("owner").map(String::as_str), Some("ops"));
    assert!(
        cm.annotations()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );
}

#[tokio::test]
async fn apply_reads_stdin_and_directories_and_reports_bad_objects() {
    let cp = ControlPlane::start().await;
    let json_doc = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"from-stdin"},"data":{"a":"1"}}"#;
    let run = niwa_at(
        &cp.api_url(),
        &["apply", "-f", "-", "-n", "kube-public"],
        Some(json_doc),
    )
    .await;
    assert_eq!(ok(&run), "configmap/from-stdin created\n");
    let cms: Api<ConfigMap> = cp.client().namespaced("kube-public");
    assert!(cms.get_opt("from-stdin").await.expect("get").is_some());

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("1-good.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("2-bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n---\n\
         apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .expect("write");
    let run = niwa(&cp, &["apply", "-f", &dir.path().display().to_string()]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "configmap/good created\n");
    assert!(
        run.stderr
            .contains("Error from server (Invalid): error when creating")
            && run.stderr.contains("metadata.name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("no matches for kind \"Widget\" in version \"example.com/v1\""),
        "{}",
        run.stderr
    );

    let run = niwa(&cp, &["apply", "-f", "/nonexistent/file.yaml"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[tokio::test]
async fn get_prints_tables_and_formats() {
    let cp = ControlPlane::start().await;
    let run = niwa_at(&cp.api_url(), &["apply", "-f", "-"], Some(MANIFEST)).await;
    ok(&run);
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    for (name, tier) in [("a", "fe"), ("b", "be")] {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": "v"}}))
        .expect("cm");
        cms.create(&cm).await.expect("create");
    }

    let table = niwa(&cp, &["get", "configmaps"]).await;
    let lines: Vec<&str> = ok(&table).lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].starts_with("NAME") && lines[0].contains("DATA") && lines[0].ends_with("AGE"));
    assert!(lines[1].starts_with("a ") && lines[2].starts_with("b "));

    let selected = niwa(&cp, &["get", "cm", "-l", "tier=be", "-o", "name"]).await;
    assert_eq!(ok(&selected), "configmap/b\n");

    let all = niwa(&cp, &["get", "configmap", "-A", "--no-headers"]).await;
    assert!(
        ok(&all)
            .lines()
            .any(|l| l.starts_with("team") && l.contains("settings")),
        "{}",
        all.stdout
    );

    let one = niwa(&cp, &["get", "svc", "api", "-n", "team", "-o", "json"]).await;
    let svc: Value = serde_json::from_str(ok(&one)).expect("json");
    assert_eq!(svc["kind"], "Service");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);

    let yaml = niwa(&cp, &["get", "services", "-n", "team", "-o", "yaml"]).await;
    let list: Value = serde_yaml_ng::from_str(ok(&yaml)).expect("yaml");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "api");

    let svc_table = niwa(&cp, &["get", "service/api", "-n", "team"]).await;
    let text = ok(&svc_table);
    assert!(
        text.contains("CLUSTER-IP") && text.contains("ClusterIP") && text.contains("80/TCP"),
        "{text}"
    );

    let ns = niwa(&cp, &["get", "ns", "team"]).await;
    assert!(ok(&ns).contains("Active"), "{}", ns.stdout);

    let missing = niwa(&cp, &["get", "pod", "nope"]).await;
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): pods \"nope\" not found"
    );

    let empty = niwa(&cp, &["get", "pods"]).await;
    assert_eq!(ok(&empty), "");
    assert_eq!(
        empty.stderr.trim(),
        "No resources found in default namespace."
    );

    let unknown = niwa(&cp, &["get", "widgets"]).await;
    assert_eq!(unknown.code, 1);
    assert_eq!(
        unknown.stderr.trim(),
        "error: the server doesn't have a resource type \"widgets\""
    );
}

#[tokio::test]
async fn get_watch_prints_changes() {
    let cp = ControlPlane::start().await;
    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    let first: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "first"}})).expect("cm");
    cms.create(&first).await.expect("create");
    let mut child = niwa_cmd(&cp.api_url(), &["get", "cm", "-w"])
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line within 20 s")
            .expect("read")
            .expect("open")
    };
    assert!(next_line().await.starts_with("NAME"));
    assert!(next_line().await.starts_with("first"));
    let second: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "second"}})).expect("cm");
    cms.create(&second).await.expect("create");
    assert!(next_line().await.starts_with("second"));
    child.start_kill().expect("kill");
    let _ = child.wait().await;
}

#[tokio::test]
async fn delete_by_name_file_and_selector() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, MANIFEST).expect("write");
    let path = file.display().to_string();
    ok(&niwa(&cp, &["apply", "-f", &path]).await);

    let cms: Api<ConfigMap> = cp.client().namespaced("default");
    for (name, tier) in [("a", "fe"), ("b", "fe"), ("c", "be")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}}))
                .expect("cm");
        cms.create(&cm).await.expect("create");
    }
    let by_name = niwa(&cp, &["delete", "cm", "c"]).await;
    assert_eq!(ok(&by_name), "configmap \"c\" deleted\n");
    let by_label = niwa(&cp, &["delete", "configmaps", "-l", "tier=fe"]).await;
    assert_eq!(
        ok(&by_label),
        "configmap \"a\" deleted\nconfigmap \"b\" deleted\n"
    );
    assert!(
        cms.list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let again = niwa(&cp, &["delete", "cm", "c"]).await;
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr.trim(),
        "Error from server (NotFound): configmaps \"c\" not found"
    );
    ok(&niwa(&cp, &["delete", "cm", "c", "--ignore-not-found"]).await);

    // By file: the namespace (which has finalizers or not) and its contents.
    let by_file = niwa(&cp, &["delete", "-f", &path, "--wait=false"]).await;
    let text = ok(&by_file);
    assert!(text.contains("configmap \"settings\" deleted"), "{text}");
    assert!(text.contains("service \"api\" deleted"), "{text}");
    assert!(text.contains("namespace \"team\" deleted"), "{text}");
    let svc: Api<Service> = cp.client().namespaced("team");
    assert!(svc.get_opt("api").await.expect("get").is_none());

    let nothing = niwa(&cp, &["delete", "pods"]).await;
    assert_eq!(nothing.code, 1);
    assert!(
        nothing.stderr.contains("no name was specified"),
        "{}",
        nothing.stderr
    );
}

#[tokio::test]
async fn an_unreachable_server_gets_a_hint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let run = niwa_at(&format!("http://{port}"), &["get", "pods"], None).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the apiserver at http://{port}"))
            && run.stderr.contains("niwa up"),
        "{}",
        run.stderr
    );
}
