//! Printers of services, nodes, namespaces, config, events, storage and networking kinds.

use jiff::Timestamp;
use niwa_api::ResourceInfo;
use serde_json::{Value, json};

use super::{AGE, Column, NAME, age, col, int, label_map, name, since, str_or};

pub fn columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    let s = "string";
    let i = "integer";
    Some(match (info.group, info.kind) {
        ("", "Service") => vec![
            NAME,
            col("Type", s, 0),
            col("Cluster-IP", s, 0),
            col("External-IP", s, 0),
            col("Port(s)", s, 0),
            AGE,
            col("Selector", s, 1),
        ],
        ("", "Endpoints") => vec![NAME, col("Endpoints", s, 0), AGE],
        ("", "Node") => vec![
            NAME,
            col("Status", s, 0),
            col("Roles", s, 0),
            AGE,
            col("Version", s, 0),
            col("Internal-IP", s, 1),
            col("External-IP", s, 1),
            col("OS-Image", s, 1),
            col("Kernel-Version", s, 1),
            col("Container-Runtime", s, 1),
        ],
        ("", "Namespace") => vec![NAME, col("Status", s, 0), AGE],
        ("", "ConfigMap") => vec![NAME, col("Data", i, 0), AGE],
        ("", "Secret") => vec![NAME, col("Type", s, 0), col("Data", i, 0), AGE],
        ("", "ServiceAccount") => vec![NAME, col("Secrets", i, 0), AGE],
        ("", "Event") | ("events.k8s.io", "Event") => vec![
            col("Last Seen", s, 0),
            col("Type", s, 0),
            col("Reason", s, 0),
            col("Object", s, 0),
            col("Subobject", s, 1),
            col("Source", s, 1),
            col("Message", s, 0),
            col("First Seen", s, 1),
            col("Count", i, 1),
            col("Name", s, 1),
        ],
        ("", "PersistentVolume") => vec![
            NAME,
            col("Capacity", s, 0),
            col("Access Modes", s, 0),
            col("Reclaim Policy", s, 0),
            col("Status", s, 0),
            col("Claim", s, 0),
            col("StorageClass", s, 0),
            col("VolumeAttributesClass", s, 0),
            col("Reason", s, 0),
            AGE,
            col("VolumeMode", s, 1),
        ],
        ("", "PersistentVolumeClaim") => vec![
            NAME,
            col("Status", s, 0),
            col("Volume", s, 0),
            col("Capacity", s, 0),
            col("Access Modes", s, 0),
            col("StorageClass", s, 0),
            col("VolumeAttributesClass", s, 0),
            AGE,
            col("VolumeMode", s, 1),
        ],
        ("", "ResourceQuota") => vec![NAME, AGE, col("Request", s, 0), col("Limit", s, 0)],
        ("networking.k8s.io", "Ingress") => vec![
            NAME,
            col("Class", s, 0),
            col("Hosts", s, 0),
            col("Address", s, 0),
            col("Ports", s, 0),
            AGE,
        ],
        ("networking.k8s.io", "IngressClass") => {
            vec![NAME, col("Controller", s, 0), col("Parameters", s, 0), AGE]
        }
        ("coordination.k8s.io", "Lease") => vec![NAME, col("Holder", s, 0), AGE],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            NAME,
            col("AddressType", s, 0),
            col("Ports", s, 0),
            col("Endpoints", s, 0),
            AGE,
        ],
        ("policy", "PodDisruptionBudget") => vec![
            NAME,
            col("Min Available", s, 0),
            col("Max Unavailable", s, 0),
            col("Allowed Disruptions", i, 0),
            AGE,
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            NAME,
            col("Reference", s, 0),
            col("Targets", s, 0),
            col("MinPods", s, 0),
            col("MaxPods", i, 0),
            col("Replicas", i, 0),
            AGE,
        ],
        _ => return None,
    })
}

pub fn cells(info: &ResourceInfo, obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    let spec = &obj["spec"];
    let status = &obj["status"];
    let n = json!(name(obj));
    Some(match (info.group, info.kind) {
        ("", "Service") => {
            let cluster_ip = spec["clusterIPs"][0]
                .as_str()
                .or_else(|| spec["clusterIP"].as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("<none>");
            let ports = service_ports(&spec["ports"]);
            vec![
                n,
                json!(str_or(&spec["type"], "ClusterIP")),
                json!(cluster_ip),
                json!(service_external_ip(obj)),
                json!(if ports.is_empty() {
                    "<none>".into()
                } else {
                    ports
                }),
                age(obj, now),
                json!(label_map(&spec["selector"])),
            ]
        }
        ("", "Endpoints") => vec![n, json!(endpoints(obj)), age(obj, now)],
        ("", "Node") => node(obj, now),
        ("", "Namespace") => vec![
            n,
            json!(status["phase"].as_str().unwrap_or_default()),
            age(obj, now),
        ],
        ("", "ConfigMap") => vec![
            n,
            json!(count(&obj["data"]) + count(&obj["binaryData"])),
            age(obj, now),
        ],
        ("", "Secret") => vec![
            n,
            json!(obj["type"].as_str().unwrap_or_default()),
            json!(count(&obj["data"])),
            age(obj, now),
        ],
        ("", "ServiceAccount") => vec![
            n,
            json!(obj["secrets"].as_array().map_or(0, Vec::len)),
            age(obj, now),
        ],
        ("", "Event") | ("events.k8s.io", "Event") => event(obj, now),
        ("", "PersistentVolume") => {
            let claim = &spec["claimRef"];
            let claim = if claim.is_object() {
                format!(
                    "{}/{}",
                    claim["namespace"].as_str().unwrap_or_default(),
                    claim["name"].as_str().unwrap_or_default()
                )
            } else {
                String::new()
            };
            vec![
                n,
                json!(spec["capacity"]["storage"].as_str().unwrap_or_default()),
                json!(access_modes(&spec["accessModes"])),
                json!(
                    spec["persistentVolumeReclaimPolicy"]
                        .as_str()
                        .unwrap_or_default()
                ),
                json!(status["phase"].as_str().unwrap_or_default()),
                json!(claim),
                json!(spec["storageClassName"].as_str().unwrap_or_default()),
                json!(str_or(&spec["volumeAttributesClassName"], "<unset>")),
                json!(status["reason"].as_str().unwrap_or_default()),
                age(obj, now),
                json!(str_or(&spec["volumeMode"], "<unset>")),
            ]
        }
        ("", "PersistentVolumeClaim") => {
            let bound = status["phase"] == "Bound";
            vec![
                n,
                json!(status["phase"].as_str().unwrap_or_default()),
                json!(spec["volumeName"].as_str().unwrap_or_default()),
                json!(if bound {
                    status["capacity"]["storage"].as_str().unwrap_or_default()
                } else {
                    ""
                }),
                json!(if bound {
                    access_modes(&status["accessModes"])
                } else {
                    String::new()
                }),
                json!(spec["storageClassName"].as_str().unwrap_or_default()),
                json!(str_or(&spec["volumeAttributesClassName"], "<unset>")),
                age(obj, now),
                json!(str_or(&spec["volumeMode"], "<unset>")),
            ]
        }
        ("", "ResourceQuota") => {
            let (requests, limits) = quota(obj);
            vec![n, age(obj, now), json!(requests), json!(limits)]
        }
        ("networking.k8s.io", "Ingress") => {
            let hosts: Vec<&str> = spec["rules"]
                .as_array()
                .map(|rs| rs.iter().filter_map(|r| r["host"].as_str()).collect())
                .unwrap_or_default();
            let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                n,
                json!(str_or(&spec["ingressClassName"], "<none>")),
                json!(if hosts.is_empty() {
                    "*".into()
                } else {
                    limited(&hosts, 3)
                }),
                json!(load_balancer(&status["loadBalancer"])),
                json!(ports),
                age(obj, now),
            ]
        }
        ("networking.k8s.io", "IngressClass") => {
            let p = &spec["parameters"];
            let params = if p.is_object() {
                let group = p["apiGroup"].as_str().unwrap_or_default();
                let kind = p["kind"].as_str().unwrap_or_default();
                let name = p["name"].as_str().unwrap_or_default();
                if group.is_empty() {
                    format!("{kind}/{name}")
                } else {
                    format!("{kind}.{group}/{name}")
                }
            } else {
                "<none>".into()
            };
            vec![
                n,
                json!(spec["controller"].as_str().unwrap_or_default()),
                json!(params),
                age(obj, now),
            ]
        }
        ("coordination.k8s.io", "Lease") => vec![
            n,
            json!(spec["holderIdentity"].as_str().unwrap_or_default()),
            age(obj, now),
        ],
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> = obj["ports"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            p["port"]
                                .as_i64()
                                .map_or("<unset>".into(), |p| p.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let addrs: Vec<&str> = obj["endpoints"]
                .as_array()
                .map(|es| {
                    es.iter()
                        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
                        .filter_map(Value::as_str)
                        .collect()
                })
                .unwrap_or_default();
            vec![
                n,
                json!(obj["addressType"].as_str().unwrap_or_default()),
                json!(if ports.is_empty() {
                    "<unset>".into()
                } else {
                    ports.join(",")
                }),
                json!(if addrs.is_empty() {
                    "<unset>".into()
                } else {
                    limited(&addrs, 3)
                }),
                age(obj, now),
            ]
        }
        ("policy", "PodDisruptionBudget") => vec![
            n,
            json!(int_or_string(&spec["minAvailable"])),
            json!(int_or_string(&spec["maxUnavailable"])),
            json!(int(&status["disruptionsAllowed"])),
            age(obj, now),
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let r = &spec["scaleTargetRef"];
            vec![
                n,
                json!(format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default()
                )),
                json!(hpa_targets(obj)),
                json!(
                    spec["minReplicas"]
                        .as_i64()
                        .map_or("<unset>".into(), |m| m.to_string())
                ),
                json!(int(&spec["maxReplicas"])),
                json!(int(&status["currentReplicas"])),
                age(obj, now),
            ]
        }
        _ => return None,
    })
}

fn count(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

fn int_or_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".into(),
    }
}

/// `a,b,c + 2 more...`
fn limited(items: &[&str], max: usize) -> String {
    if items.len() > max {
        format!("{} + {} more...", items[..max].join(","), items.len() - max)
    } else {
        items.join(",")
    }
}

fn service_ports(ports: &Value) -> String {
    ports
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = int(&p["port"]);
                    let proto = str_or(&p["protocol"], "TCP");
                    match p["nodePort"].as_i64().filter(|n| *n > 0) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn load_balancer(lb: &Value) -> String {
    lb["ingress"]
        .as_array()
        .map(|is| {
            is.iter()
                .filter_map(|i| {
                    i["ip"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .or_else(|| i["hostname"].as_str())
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = svc["spec"]["externalIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match str_or(&svc["spec"]["type"], "ClusterIP") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer(&svc["status"]["loadBalancer"]);
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => svc["spec"]["externalName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        _ => "<unknown>".into(),
    }
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn endpoints(ep: &Value) -> String {
    let Some(subsets) = ep["subsets"].as_array().filter(|s| !s.is_empty()) else {
        return "<none>".into();
    };
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addrs: Vec<&str> = ss["addresses"]
            .as_array()
            .map(|a| a.iter().filter_map(|a| a["ip"].as_str()).collect())
            .unwrap_or_default();
        match ss["ports"].as_array().filter(|p| !p.is_empty()) {
            None => {
                count += addrs.len();
                for a in &addrs {
                    if list.len() == max {
                        break;
                    }
                    list.push((*a).to_string());
                }
            }
            Some(ports) => {
                for p in ports {
                    count += addrs.len();
                    for a in &addrs {
                        if list.len() == max {
                            break;
                        }
                        let host = if a.contains(':') {
                            format!("[{a}]")
                        } else {
                            (*a).to_string()
                        };
                        list.push(format!("{host}:{}", int(&p["port"])));
                    }
                }
            }
        }
    }
    let joined = list.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else {
        joined
    }
}

fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    let status = &obj["status"];
    let mut state: Vec<String> = Vec::new();
    if let Some(ready) = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
    {
        state.push(if ready["status"] == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if state.is_empty() {
        state.push("Unknown".into());
    }
    if obj["spec"]["unschedulable"] == true {
        state.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str().filter(|v| !v.is_empty())
            {
                roles.push(v.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    let address = |ty: &str| {
        status["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == ty))
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = &status["nodeInfo"];
    vec![
        json!(name(obj)),
        json!(state.join(",")),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        age(obj, now),
        json!(info["kubeletVersion"].as_str().unwrap_or_default()),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(str_or(&info["osImage"], "<unknown>")),
        json!(str_or(&info["kernelVersion"], "<unknown>")),
        json!(str_or(&info["containerRuntimeVersion"], "<unknown>")),
    ]
}

/// Core `Event` and `events.k8s.io` `Event` (whose fields carry other names).
fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
    let first_ts = [
        &obj["firstTimestamp"],
        &obj["deprecatedFirstTimestamp"],
        &obj["eventTime"],
    ]
    .into_iter()
    .find(|v| v.is_string())
    .cloned()
    .unwrap_or(Value::Null);
    let first = since(&first_ts, now);
    let mut last = [&obj["lastTimestamp"], &obj["deprecatedLastTimestamp"]]
        .into_iter()
        .find(|v| v.is_string())
        .map_or_else(|| first.clone(), |v| since(v, now));
    let mut count = obj["count"]
        .as_i64()
        .or_else(|| obj["deprecatedCount"].as_i64())
        .unwrap_or(0);
    if obj["series"].is_object() {
        last = since(&obj["series"]["lastObservedTime"], now);
        count = int(&obj["series"]["count"]);
    } else if count == 0 {
        count = 1;
    }
    let involved = if obj["involvedObject"].is_object() {
        &obj["involvedObject"]
    } else {
        &obj["regarding"]
    };
    let kind = involved["kind"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let source = if obj["source"].is_object() {
        &obj["source"]
    } else {
        &obj["deprecatedSource"]
    };
    let component = source["component"]
        .as_str()
        .filter(|c| !c.is_empty())
        .or_else(|| obj["reportingController"].as_str())
        .unwrap_or_default();
    let host = source["host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .or_else(|| obj["reportingInstance"].as_str())
        .unwrap_or_default();
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    let message = obj["message"]
        .as_str()
        .or_else(|| obj["note"].as_str())
        .unwrap_or_default()
        .trim();
    vec![
        json!(last),
        json!(obj["type"].as_str().unwrap_or_default()),
        json!(obj["reason"].as_str().unwrap_or_default()),
        json!(target),
        json!(involved["fieldPath"].as_str().unwrap_or_default()),
        json!(source),
        json!(message),
        json!(first),
        json!(count),
        json!(name(obj)),
    ]
}

fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| match m.as_str()? {
                    "ReadWriteOnce" => Some("RWO"),
                    "ReadOnlyMany" => Some("ROX"),
                    "ReadWriteMany" => Some("RWX"),
                    "ReadWriteOncePod" => Some("RWOP"),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `REQUEST` and `LIMIT` of a ResourceQuota: `cpu: 500m/1, pods: 3/10`.
fn quota(obj: &Value) -> (String, String) {
    let hard = obj["status"]["hard"]
        .as_object()
        .or_else(|| obj["spec"]["hard"].as_object())
        .cloned()
        .unwrap_or_default();
    let used = &obj["status"]["used"];
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let mut keys: Vec<&String> = hard.keys().collect();
    keys.sort();
    for k in keys {
        let entry = format!(
            "{k}: {}/{}",
            used[k.as_str()].as_str().unwrap_or("0"),
            hard[k.as_str()].as_str().unwrap_or_default()
        );
        if k.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    (requests.join(", "), limits.join(", "))
}

fn hpa_targets(obj: &Value) -> String {
    let metrics = obj["spec"]["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if metrics.is_empty() {
        // autoscaling/v1 form or no metrics: the CPU target.
        return match obj["spec"]["targetCPUUtilizationPercentage"].as_i64() {
            Some(t) => format!("cpu: <unknown>/{t}%"),
            None => "<none>".into(),
        };
    }
    let current = obj["status"]["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let parts: Vec<String> = metrics
        .iter()
        .map(|m| {
            let res = &m["resource"];
            let rname = res["name"].as_str().unwrap_or_default();
            let cur = current
                .iter()
                .find(|c| c["resource"]["name"] == rname)
                .and_then(|c| c["resource"]["current"]["averageUtilization"].as_i64())
                .map_or("<unknown>".into(), |u| format!("{u}%"));
            match res["target"]["averageUtilization"].as_i64() {
                Some(t) => format!("{rname}: {cur}/{t}%"),
                None => format!(
                    "{rname}: {cur}/{}",
                    res["target"]["averageValue"]
                        .as_str()
                        .unwrap_or("<unknown>")
                ),
            }
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::Registry;

    fn now() -> Timestamp {
        "2025-01-01T01:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn info(name: &str) -> &'static ResourceInfo {
        match Registry.resolve(name) {
            Some(i) => i,
            None => panic!("{name}"),
        }
    }

    #[test]
    fn service_rows() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "127.96.0.12", "clusterIPs": ["127.96.0.12"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "web"}}});
        assert_eq!(
            cells(info("services"), &svc, now()),
            Some(vec![
                json!("web"),
                json!("NodePort"),
                json!("127.96.0.12"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("60m"),
                json!("app=web")
            ])
        );
        let lb = json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert_eq!(service_external_ip(&lb), "<pending>");
        let lb = json!({"spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.200.0.1"}]}}});
        assert_eq!(service_external_ip(&lb), "127.200.0.1");
    }

    #[test]
    fn node_rows() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "127.1.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        let c = cells(info("nodes"), &node, now()).unwrap_or_default();
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.33.0");
        assert_eq!(c[5], "127.1.0.1");
        assert_eq!(c[7], "<unknown>");
    }

    #[test]
    fn endpoints_and_events() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}],
            "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            endpoints(&ep),
            "1.1.1.1:80,1.1.1.2:80,1.1.1.1:443 + 1 more..."
        );
        assert_eq!(endpoints(&json!({})), "<none>");
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "web"}, "message": "Successfully assigned\n",
            "firstTimestamp": "2025-01-01T00:59:00Z", "lastTimestamp": "2025-01-01T00:59:30Z",
            "count": 2, "source": {"component": "default-scheduler"}});
        let c = cells(info("events"), &ev, now()).unwrap_or_default();
        assert_eq!(
            c,
            vec![
                json!("30s"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web"),
                json!(""),
                json!("default-scheduler"),
                json!("Successfully assigned"),
                json!("60s"),
                json!(2),
                json!("web.1")
            ]
        );
    }

    #[test]
    fn config_rows() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(
            cells(info("configmaps"), &cm, now()).unwrap_or_default()[1],
            3
        );
        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}});
        let c = cells(info("secrets"), &secret, now()).unwrap_or_default();
        assert_eq!((c[1].clone(), c[2].clone()), (json!("Opaque"), json!(1)));
    }
}
