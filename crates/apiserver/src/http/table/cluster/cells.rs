//! Cell formatting for the cluster printers, as `kubectl get` shows these columns.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::super::{age, int, name, since, str_or};
pub(super) fn count(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len())
}

pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".into(),
    }
}

/// `a,b,c + 2 more...`
pub(super) fn limited(items: &[&str], max: usize) -> String {
    if items.len() > max {
        format!("{} + {} more...", items[..max].join(","), items.len() - max)
    } else {
        items.join(",")
    }
}

pub(super) fn service_ports(ports: &Value) -> String {
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

pub(super) fn load_balancer(lb: &Value) -> String {
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

pub(super) fn service_external_ip(svc: &Value) -> String {
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
pub(super) fn endpoints(ep: &Value) -> String {
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

pub(super) fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
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
pub(super) fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
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

pub(super) fn access_modes(modes: &Value) -> String {
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
pub(super) fn quota(obj: &Value) -> (String, String) {
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

pub(super) fn hpa_targets(obj: &Value) -> String {
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
