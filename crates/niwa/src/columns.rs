//! The table columns `niwa get` prints per kind — the ones kubectl's printers show — computed
//! from the object's JSON. Kinds without their own columns get NAME and AGE.

use niwa_api::ResourceInfo;
use serde_json::Value;

use crate::output::age;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

/// The column headers of `info` (NAMESPACE is prepended by the caller for `-A`).
pub fn headers(info: &ResourceInfo, wide: bool) -> Vec<&'static str> {
    let mut h = match (info.group, info.kind) {
        ("", "Pod") => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ("", "Service") => vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
        ],
        ("", "Node") => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ("", "Namespace") => vec!["NAME", "STATUS", "AGE"],
        ("", "ConfigMap") => vec!["NAME", "DATA", "AGE"],
        ("", "Secret") => vec!["NAME", "TYPE", "DATA", "AGE"],
        ("", "Endpoints") => vec!["NAME", "ENDPOINTS", "AGE"],
        ("", "Event") => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        ("", "PersistentVolumeClaim") => vec!["NAME", "STATUS", "VOLUME", "CAPACITY", "AGE"],
        ("apps", "Deployment") => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ("apps", "ReplicaSet") => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ("apps", "StatefulSet") => vec!["NAME", "READY", "AGE"],
        ("apps", "DaemonSet") => {
            vec![
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
            ]
        }
        ("batch", "Job") => vec!["NAME", "STATUS", "COMPLETIONS", "AGE"],
        ("batch", "CronJob") => vec![
            "NAME",
            "SCHEDULE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ],
        ("coordination.k8s.io", "Lease") => vec!["NAME", "HOLDER", "AGE"],
        ("networking.k8s.io", "Ingress") => {
            vec!["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
        }
        _ => vec!["NAME", "AGE"],
    };
    if wide {
        match (info.group, info.kind) {
            ("", "Pod") => h.extend(["IP", "NODE"]),
            ("", "Node") => h.extend(["INTERNAL-IP"]),
            ("", "Service") => h.extend(["SELECTOR"]),
            ("apps", "Deployment" | "ReplicaSet") => h.extend(["SELECTOR"]),
            _ => {}
        }
    }
    h
}

/// One row of `obj`, matching [`headers`].
pub fn row(info: &ResourceInfo, obj: &Value, wide: bool, now: jiff::Timestamp) -> Vec<String> {
    let md = &obj["metadata"];
    let name = s(&md["name"]).to_string();
    let age = age(md["creationTimestamp"].as_str(), now);
    let spec = &obj["spec"];
    let status = &obj["status"];
    let mut r = match (info.group, info.kind) {
        ("", "Pod") => {
            let containers = spec["containers"].as_array().map_or(0, Vec::len);
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| n(&c["restartCount"])).sum();
            vec![
                name,
                format!("{ready}/{containers}"),
                pod_status(obj),
                restarts.to_string(),
                age,
            ]
        }
        ("", "Service") => vec![
            name,
            s(&spec["type"]).to_string(),
            or_none(s(&spec["clusterIP"]).to_string()),
            external_ip(obj),
            or_none(service_ports(spec)),
            age,
        ],
        ("", "Node") => vec![name, node_status(obj), node_roles(md), age, {
            s(&status["nodeInfo"]["kubeletVersion"]).to_string()
        }],
        ("", "Namespace") => vec![name, s(&status["phase"]).to_string(), age],
        ("", "ConfigMap") => {
            let count = ["data", "binaryData"]
                .iter()
                .map(|k| obj[k].as_object().map_or(0, |m| m.len()))
                .sum::<usize>();
            vec![name, count.to_string(), age]
        }
        ("", "Secret") => {
            let count = obj["data"].as_object().map_or(0, |m| m.len());
            vec![name, s(&obj["type"]).to_string(), count.to_string(), age]
        }
        ("", "Endpoints") => vec![name, or_none(endpoints(obj)), age],
        ("", "Event") => {
            let last = obj["lastTimestamp"]
                .as_str()
                .or_else(|| obj["eventTime"].as_str())
                .or_else(|| md["creationTimestamp"].as_str());
            let o = &obj["involvedObject"];
            vec![
                crate::output::age(last, now),
                s(&obj["type"]).to_string(),
                s(&obj["reason"]).to_string(),
                format!("{}/{}", s(&o["kind"]).to_ascii_lowercase(), s(&o["name"])),
                s(&obj["message"]).to_string(),
            ]
        }
        ("", "PersistentVolumeClaim") => vec![
            name,
            s(&status["phase"]).to_string(),
            s(&spec["volumeName"]).to_string(),
            s(&status["capacity"]["storage"]).to_string(),
            age,
        ],
        ("apps", "Deployment") => vec![
            name,
            format!("{}/{}", n(&status["readyReplicas"]), replicas(spec)),
            n(&status["updatedReplicas"]).to_string(),
            n(&status["availableReplicas"]).to_string(),
            age,
        ],
        ("apps", "ReplicaSet") => vec![
            name,
            replicas(spec).to_string(),
            n(&status["replicas"]).to_string(),
            n(&status["readyReplicas"]).to_string(),
            age,
        ],
        ("apps", "StatefulSet") => vec![
            name,
            format!("{}/{}", n(&status["readyReplicas"]), replicas(spec)),
            age,
        ],
        ("apps", "DaemonSet") => vec![
            name,
            n(&status["desiredNumberScheduled"]).to_string(),
            n(&status["currentNumberScheduled"]).to_string(),
            n(&status["numberReady"]).to_string(),
            n(&status["updatedNumberScheduled"]).to_string(),
            n(&status["numberAvailable"]).to_string(),
            age,
        ],
        ("batch", "Job") => {
            let completions = spec["completions"].as_i64().unwrap_or(1);
            vec![
                name,
                job_status(status),
                format!("{}/{completions}", n(&status["succeeded"])),
                age,
            ]
        }
        ("batch", "CronJob") => vec![
            name,
            s(&spec["schedule"]).to_string(),
            (spec["suspend"] == true).to_string(),
            status["active"].as_array().map_or(0, Vec::len).to_string(),
            status["lastScheduleTime"]
                .as_str()
                .map_or_else(|| "<none>".into(), |t| crate::output::age(Some(t), now)),
            age,
        ],
        ("coordination.k8s.io", "Lease") => {
            vec![name, or_none(s(&spec["holderIdentity"]).to_string()), age]
        }
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .map(|rules| {
                    rules
                        .iter()
                        .map(|r| s(&r["host"]))
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                name,
                or_none(s(&spec["ingressClassName"]).to_string()),
                if hosts.is_empty() {
                    "*".into()
                } else {
                    hosts.join(",")
                },
                load_balancer_ips(status),
                ports.to_string(),
                age,
            ]
        }
        _ => vec![name, age],
    };
    if wide {
        match (info.group, info.kind) {
            ("", "Pod") => {
                r.push(or_none(s(&status["podIP"]).to_string()));
                r.push(or_none(s(&spec["nodeName"]).to_string()));
            }
            ("", "Node") => {
                let ip = status["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
                    .map(|x| s(&x["address"]).to_string())
                    .unwrap_or_default();
                r.push(or_none(ip));
            }
            ("", "Service") => r.push(or_none(map_selector(&spec["selector"]))),
            ("apps", "Deployment" | "ReplicaSet") => {
                r.push(or_none(map_selector(&spec["selector"]["matchLabels"])))
            }
            _ => {}
        }
    }
    r
}

fn replicas(spec: &Value) -> i64 {
    spec["replicas"].as_i64().unwrap_or(1)
}

/// kubectl's pod STATUS: Terminating, a container's waiting/terminated reason, the pod's
/// reason, or its phase.
fn pod_status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let status = &pod["status"];
    let mut reason = s(&status["reason"]).to_string();
    if reason.is_empty() {
        reason = s(&status["phase"]).to_string();
    }
    let init = status["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, c) in init.iter().enumerate() {
        let term = &c["state"]["terminated"];
        if term.is_object() && n(&term["exitCode"]) == 0 {
            continue;
        }
        if term.is_object() {
            return format!(
                "Init:{}",
                if s(&term["reason"]).is_empty() {
                    "Error"
                } else {
                    s(&term["reason"])
                }
            );
        }
        let waiting = s(&c["state"]["waiting"]["reason"]);
        if !waiting.is_empty() && waiting != "PodInitializing" {
            return format!("Init:{waiting}");
        }
        return format!("Init:{i}/{}", init.len());
    }
    for c in status["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let waiting = s(&c["state"]["waiting"]["reason"]);
        let terminated = &c["state"]["terminated"];
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if terminated.is_object() {
            let r = s(&terminated["reason"]);
            reason = if r.is_empty() {
                format!("ExitCode:{}", n(&terminated["exitCode"]))
            } else {
                r.to_string()
            };
        }
    }
    if reason.is_empty() {
        "Pending".into()
    } else {
        reason
    }
}

fn node_status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| s(&c["status"]) == "True");
    let mut status = match ready {
        Some(true) => "Ready".to_string(),
        Some(false) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(md: &Value) -> String {
    let mut roles: Vec<&str> = md["labels"]
        .as_object()
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    or_none(roles.join(","))
}

fn service_ports(spec: &Value) -> String {
    spec["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let proto = if s(&p["protocol"]).is_empty() {
                        "TCP"
                    } else {
                        s(&p["protocol"])
                    };
                    match p["nodePort"].as_i64() {
                        Some(np) => format!("{}:{np}/{proto}", n(&p["port"])),
                        None => format!("{}/{proto}", n(&p["port"])),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn load_balancer_ips(status: &Value) -> String {
    status["loadBalancer"]["ingress"]
        .as_array()
        .map(|ing| {
            ing.iter()
                .map(|i| {
                    if s(&i["ip"]).is_empty() {
                        s(&i["hostname"])
                    } else {
                        s(&i["ip"])
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let mut ips: Vec<String> = spec["externalIPs"]
        .as_array()
        .map(|a| a.iter().map(|v| s(v).to_string()).collect())
        .unwrap_or_default();
    if s(&spec["type"]) == "LoadBalancer" {
        let lb = load_balancer_ips(&svc["status"]);
        if lb.is_empty() && ips.is_empty() {
            return "<pending>".into();
        }
        if !lb.is_empty() {
            ips.push(lb);
        }
    }
    or_none(ips.join(","))
}

fn endpoints(ep: &Value) -> String {
    let mut out = Vec::new();
    for subset in ep["subsets"].as_array().cloned().unwrap_or_default() {
        let ports: Vec<i64> = subset["ports"]
            .as_array()
            .map(|p| p.iter().map(|p| n(&p["port"])).collect())
            .unwrap_or_default();
        for addr in subset["addresses"].as_array().cloned().unwrap_or_default() {
            if ports.is_empty() {
                out.push(s(&addr["ip"]).to_string());
            }
            for port in &ports {
                out.push(format!("{}:{port}", s(&addr["ip"])));
            }
        }
    }
    if out.len() > 3 {
        let more = out.len() - 3;
        out.truncate(3);
        return format!("{} + {more} more...", out.join(","));
    }
    out.join(",")
}

fn job_status(status: &Value) -> String {
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if has("Complete") {
        "Complete".into()
    } else if has("Failed") {
        "Failed".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

fn map_selector(selector: &Value) -> String {
    selector
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::Registry;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2025-01-01T01:00:00Z".parse().expect("ts")
    }

    fn info(kind: &str) -> &'static ResourceInfo {
        Registry.resolve(kind).expect("known kind")
    }

    #[test]
    fn pod_rows() {
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:55:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "127.244.1.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        });
        assert_eq!(
            row(info("pods"), &pod, true, now()),
            [
                "web",
                "1/2",
                "CrashLoopBackOff",
                "3",
                "5m",
                "127.244.1.5",
                "n1"
            ]
        );
        assert_eq!(headers(info("pods"), true).len(), 7);
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(row(info("pods"), &pending, false, now())[2], "Pending");
        let deleting = json!({"metadata": {"name": "p", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": "Running"}});
        assert_eq!(row(info("pods"), &deleting, false, now())[2], "Terminating");
    }

    #[test]
    fn service_node_and_workload_rows() {
        let svc = json!({"metadata": {"name": "api"}, "spec": {"type": "NodePort", "clusterIP": "127.96.0.12",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            row(info("svc"), &svc, false, now()),
            [
                "api",
                "NodePort",
                "127.96.0.12",
                "<none>",
                "80:30080/TCP,53/UDP",
                "<unknown>"
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "127.96.0.3"}});
        assert_eq!(row(info("svc"), &lb, false, now())[3], "<pending>");

        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        assert_eq!(
            row(info("nodes"), &node, false, now()),
            [
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "<unknown>",
                "v1.33.0"
            ]
        );

        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            row(info("deploy"), &deploy, false, now()),
            ["web", "2/3", "3", "2", "<unknown>"]
        );
        let ep = json!({"metadata": {"name": "api"}, "subsets": [{"addresses": [{"ip": "127.244.1.2"}, {"ip": "127.244.1.3"}],
            "ports": [{"port": 8080}]}]});
        assert_eq!(
            row(info("ep"), &ep, false, now())[1],
            "127.244.1.2:8080,127.244.1.3:8080"
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        assert_eq!(row(info("cm"), &cm, false, now()), ["c", "2", "<unknown>"]);
        let other = json!({"metadata": {"name": "x", "creationTimestamp": "2025-01-01T00:00:00Z"}});
        assert_eq!(row(info("pdb"), &other, false, now()), ["x", "60m"]);
        assert_eq!(headers(info("pdb"), false), ["NAME", "AGE"]);
    }
}
