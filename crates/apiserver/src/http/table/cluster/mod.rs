//! Printers of services, nodes, namespaces, config, events, storage and networking kinds.
//!
//! [`columns`] and [`cells`] pick a kind's printer; the cell formatting (ports, external IPs, node
//! roles, event sources, quota usage, …) is in `cells`.

mod cells;
#[cfg(test)]
mod tests;

use cells::*;

use jiff::Timestamp;
use niwa_api::ResourceInfo;
use serde_json::{Value, json};

use super::{AGE, Column, NAME, age, col, int, label_map, name, str_or};

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
