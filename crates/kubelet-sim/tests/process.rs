//! The kubelet with the process runtime against a real apiserver (in-process), driven by the real
//! `kubectl` where a user would use it: a web server pod answers curl on its pod IP, logs and exec
//! go through the apiserver to the kubelet, env and ConfigMap/Secret volumes reach the process, a
//! failing liveness probe restarts the container, a crashing one backs off, and deleting a pod
//! SIGTERMs its process.

mod common;

use std::path::Path;
use std::time::Duration;

use common::http_get;
use common::process::{ProcessCluster, pod_ip};
use common::{condition, container, phase, restarts, wait_gone, wait_pod};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use niwa_client::{Api, DeleteParams};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_run_nginx_serves_http_with_logs_and_exec() {
    let pc = ProcessCluster::start().await;
    let over = pc.node_override();
    pc.kubectl_ok(&[
        "run",
        "web",
        "--image=nginx",
        &format!("--overrides={over}"),
    ])
    .await;
    pc.kubectl_ok(&[
        "run",
        "web2",
        "--image=nginx",
        "--port=8080",
        &format!("--overrides={over}"),
    ])
    .await;
    let pods = pc.c.pods();
    let web = wait_pod(&pods, "web", T, |p| condition(p, "Ready") == "True").await;
    assert_eq!(phase(&web), "Running");
    let ip = pod_ip(&web);
    assert!(
        ip.starts_with(&format!("127.{}.1.", pc.c.block)),
        "pod IP {ip} inside the node's podCIDR 127.{}.1.0/24",
        pc.c.block
    );
    let id = container(&web, "web")["containerID"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(id.starts_with("niwa://"), "{id}");

    let page = http_get(&format!("{ip}:80"), "/").await;
    let page = page.unwrap_or_else(|e| panic!("curl {ip}:80: {e}"));
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(page.contains("Welcome to nginx!"), "{page}");
    assert!(
        page.contains("<b>web</b>"),
        "the page names the pod: {page}"
    );

    // A second nginx on its own pod IP and its declared containerPort.
    let web2 = wait_pod(&pods, "web2", T, |p| condition(p, "Ready") == "True").await;
    let ip2 = pod_ip(&web2);
    assert_ne!(ip, ip2, "each pod has its own IP");
    let page2 = http_get(&format!("{ip2}:8080"), "/").await;
    assert!(
        page2.as_deref().is_ok_and(|p| p.contains("<b>web2</b>")),
        "{page2:?}"
    );

    // The real curl, as a user would.
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{ip}/")])
        .output()
        .await;
    if let Ok(out) = curl {
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.contains("Welcome to nginx!"), "curl: {body}");
    }

    // kubectl logs: through the apiserver to the kubelet's gRPC API.
    let logs = pc.kubectl_ok(&["logs", "web"]).await;
    assert!(logs.contains("listening on"), "logs: {logs:?}");

    // kubectl exec: inside the container (its environment and hostname).
    let out = pc
        .kubectl_ok(&[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo $POD_NAME $POD_IP; hostname",
        ])
        .await;
    assert_eq!(out, format!("web {ip}\nweb\n"), "exec output");
    let (code, _, _) = pc
        .kubectl(&["exec", "web", "--", "sh", "-c", "exit 3"])
        .await;
    // stdin flows in (`kubectl exec -i`).
    let (code_i, out, err) = pc
        .kubectl_in(
            &["exec", "-i", "web", "--", "tr", "a-z", "A-Z"],
            Some("hello stdin\n"),
        )
        .await;
    assert_eq!(code_i, 0, "kubectl exec -i: {out}{err}");
    assert_eq!(out, "HELLO STDIN\n");
    assert_eq!(code, 3, "exec exit code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_configmap_secret_volumes_reach_the_process() {
    let pc = ProcessCluster::start().await;
    let client = pc.c.client();
    let cms: Api<ConfigMap> = client.namespaced("default");
    let secrets: Api<Secret> = client.namespaced("default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"greeting": "hello", "color": "blue"},
    }))
    .unwrap_or_default();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "stringData": {"password": "s3cret"},
    }))
    .unwrap_or_default();
    assert!(cms.create(&cm).await.is_ok());
    assert!(secrets.create(&secret).await.is_ok());
    pc.c.create_pod(json!({
        "metadata": {"name": "reader", "labels": {"app": "reader"}},
        "spec": {"containers": [{
            "name": "app", "image": "busybox",
            "command": ["sh", "-c", "echo greeting=$GREETING password=$PASSWORD ip=$MY_IP; sleep 3600"],
            "env": [
                {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/config"},
                {"name": "secret", "mountPath": "/etc/secret", "readOnly": true},
            ],
        }],
        "volumes": [
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "secret", "secret": {"secretName": "creds"}},
        ]},
    }))
    .await;
    let pods = pc.c.pods();
    let p = wait_pod(&pods, "reader", T, |p| condition(p, "Ready") == "True").await;
    let ip = pod_ip(&p);
    let logs = wait_logs(&pc, &["logs", "reader"], "greeting=").await;
    assert_eq!(logs, format!("greeting=hello password=s3cret ip={ip}\n"));
    let out = pc
        .kubectl_ok(&[
            "exec",
            "reader",
            "--",
            "sh",
            "-c",
            "cat /etc/config/greeting; echo; cat /etc/secret/password; echo; echo $CM_color",
        ])
        .await;
    assert_eq!(out, "hello\ns3cret\nblue\n");

    // A ConfigMap edit shows up in the mounted file.
    let mut edited = cms.get("settings").await.unwrap_or_default();
    edited
        .data
        .get_or_insert_default()
        .insert("greeting".into(), "bonjour".into());
    assert!(cms.replace(&edited).await.is_ok());
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let out = pc
            .kubectl_ok(&["exec", "reader", "--", "cat", "/etc/config/greeting"])
            .await;
        if out == "bonjour" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mounted file still says {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kubectl logs ...` until its output contains `want`.
async fn wait_logs(pc: &ProcessCluster, args: &[&str], want: &str) -> String {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (code, out, err) = pc.kubectl(args).await;
        if code == 0 && out.contains(want) {
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubectl {args:?}: {code} {out} {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_restarts_and_crashes_back_off() {
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "sick"},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
            "name": "web", "image": "nginx", "ports": [{"containerPort": 8080}],
            "livenessProbe": {"httpGet": {"path": "/missing", "port": 8080},
                "periodSeconds": 1, "failureThreshold": 2},
        }]},
    }))
    .await;
    pc.c.create_pod(json!({
        "metadata": {"name": "crasher"},
        "spec": {"containers": [{
            "name": "app", "image": "busybox", "command": ["sh", "-c", "echo dying; exit 1"],
        }]},
    }))
    .await;
    let pods = pc.c.pods();
    let p = wait_pod(&pods, "sick", T, |p| restarts(p, "web") >= 1).await;
    let web = container(&p, "web");
    assert!(
        !web["lastState"]["terminated"].is_null(),
        "restarted after liveness failures: {web}"
    );

    let p = wait_pod(&pods, "crasher", T, |p| {
        container(p, "app")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    let app = container(&p, "app");
    assert_eq!(app["lastState"]["terminated"]["exitCode"], 1, "{app}");
    assert_eq!(app["lastState"]["terminated"]["reason"], "Error", "{app}");
    let (_, status, _) = pc.kubectl(&["get", "pod", "crasher"]).await;
    assert!(
        status.contains("CrashLoopBackOff") || status.contains("Error"),
        "{status}"
    );
    let logs = wait_logs(&pc, &["logs", "crasher", "--previous"], "dying").await;
    assert_eq!(logs, "dying\n");
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| !r.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_sigterms_its_process_and_removes_the_object() {
    let pc = ProcessCluster::start().await;
    let shared = pc.dir.path().join("shared");
    if let Err(e) = std::fs::create_dir_all(&shared) {
        panic!("mkdir: {e}");
    }
    pc.c.create_pod(json!({
        "metadata": {"name": "graceful"},
        "spec": {"terminationGracePeriodSeconds": 20, "containers": [{
            "name": "app", "image": "busybox",
            "command": ["sh", "-c",
                "echo $$$$ > /out/pid; trap 'echo TERM > /out/signal; exit 0' TERM; while true; do sleep 0.1; done"],
            "volumeMounts": [{"name": "out", "mountPath": "/out"}],
        }],
        "volumes": [{"name": "out", "hostPath": {"path": shared.display().to_string()}}]},
    }))
    .await;
    let pods = pc.c.pods();
    wait_pod(&pods, "graceful", T, |p| phase(p) == "Running").await;
    let pid_file = shared.join("pid");
    let deadline = tokio::time::Instant::now() + T;
    while !pid_file.exists() {
        assert!(tokio::time::Instant::now() < deadline, "no pid file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
    let pid: i32 = text.trim().parse().unwrap_or(0);
    // ($$$$ above: Kubernetes expands `$$` to `$` in commands.) The shell's `$$` is a host PID:
    // containers share the host's PID namespace.
    assert!(
        pid > 0 && pid_alive(pid),
        "container process {pid} ({text:?}) runs"
    );
    let started = std::time::Instant::now();
    assert!(
        pods.delete("graceful", &DeleteParams::default())
            .await
            .is_ok()
    );
    wait_gone(&pods, "graceful", T).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ended on SIGTERM, not after the grace period: {:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("signal"))
            .ok()
            .as_deref(),
        Some("TERM\n"),
        "the process got SIGTERM"
    );
    assert!(!pid_alive(pid), "process {pid} is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_reads_the_apps_log_through_an_empty_dir() {
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "pair"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [
            {"name": "app", "image": "busybox",
             "command": ["sh", "-c", "echo hello from app >> /var/log/app/app.log; sleep 3600"],
             "volumeMounts": [{"name": "logs", "mountPath": "/var/log/app"}]},
            {"name": "sidecar", "image": "busybox",
             "command": ["sh", "-c", "until [ -s /logs/app.log ]; do sleep 0.1; done; cat /logs/app.log; sleep 3600"],
             "volumeMounts": [{"name": "logs", "mountPath": "/logs", "readOnly": true}]},
        ],
        "volumes": [{"name": "logs", "emptyDir": {}}]},
    }))
    .await;
    wait_pod(&pc.c.pods(), "pair", T, |p| condition(p, "Ready") == "True").await;
    let logs = wait_logs(&pc, &["logs", "pair", "-c", "sidecar"], "hello").await;
    assert_eq!(logs, "hello from app\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probe_flips_the_ready_condition() {
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "net"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "agnhost", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "args": ["netexec", "--http-port=8080"],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080},
                "periodSeconds": 1, "failureThreshold": 1},
        }]},
    }))
    .await;
    let pods = pc.c.pods();
    let p = wait_pod(&pods, "net", T, |p| condition(p, "Ready") == "True").await;
    let addr = format!("{}:8080", pod_ip(&p));
    let set = http_get(&addr, "/setready?code=503").await;
    assert!(set.is_ok(), "{set:?}");
    let p = wait_pod(&pods, "net", T, |p| condition(p, "Ready") == "False").await;
    assert_eq!(phase(&p), "Running");
    assert_eq!(container(&p, "agnhost")["ready"], false);
    let set = http_get(&addr, "/setready?code=200").await;
    assert!(set.is_ok(), "{set:?}");
    wait_pod(&pods, "net", T, |p| condition(p, "Ready") == "True").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_kubelet_adopts_running_pods() {
    let mut pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "steady"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }))
    .await;
    let pods = pc.c.pods();
    let before = wait_pod(&pods, "steady", T, |p| condition(p, "Ready") == "True").await;
    let id = container(&before, "web")["containerID"].clone();
    let ip = pod_ip(&before);
    pc.c.stop_kubelet().await;
    // The container outlives its kubelet.
    let page = http_get(&format!("{ip}:80"), "/").await;
    assert!(page.is_ok_and(|p| p.contains("steady")));
    pc.c.restart_kubelet().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = wait_pod(&pods, "steady", T, |p| condition(p, "Ready") == "True").await;
    assert_eq!(
        container(&after, "web")["containerID"],
        id,
        "same container"
    );
    assert_eq!(restarts(&after, "web"), 0);
    assert_eq!(pod_ip(&after), ip);
    // Logs and exec reach the adopted container through the new kubelet.
    let out = pc.kubectl_ok(&["exec", "steady", "--", "hostname"]).await;
    assert_eq!(out, "steady\n");
    assert!(
        pc.kubectl_ok(&["logs", "steady"])
            .await
            .contains("listening on")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pods_have_the_node_ip() {
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "hostnet"},
        "spec": {"hostNetwork": true, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": "busybox", "command": ["sh", "-c", "echo ip=$POD_IP; sleep 3600"],
        }]},
    }))
    .await;
    let p = wait_pod(&pc.c.pods(), "hostnet", T, |p| phase(p) == "Running").await;
    let node_ip = format!("127.{}.0.1", pc.c.block);
    assert_eq!(pod_ip(&p), node_ip);
    let logs = wait_logs(&pc, &["logs", "hostnet"], "ip=").await;
    assert_eq!(logs, format!("ip={node_ip}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        eprintln!("skipped: no memory cgroup on this machine");
        return;
    }
    let pc = ProcessCluster::start().await;
    pc.c.create_pod(json!({
        "metadata": {"name": "hog"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "app", "image": "busybox",
            "command": ["sh", "-c", "x=$$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"],
            "resources": {"limits": {"memory": "32Mi"}},
        }]},
    }))
    .await;
    let p = wait_pod(&pc.c.pods(), "hog", T, |p| phase(p) == "Failed").await;
    let app = container(&p, "app");
    assert_eq!(app["state"]["terminated"]["reason"], "OOMKilled", "{app}");
    assert_eq!(app["state"]["terminated"]["exitCode"], 137, "{app}");
}
