//! The node side of the kubelet: the Node object it registers (labels, capacity, addresses,
//! conditions, nodeInfo, daemonEndpoints) and [`manager`], which keeps nodes registered, their
//! Leases renewed and their status current.

pub mod host;
pub mod manager;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use crate::config::{Capacity, KubeletConfig, NodeIdentity, RuntimeKind};
use crate::runtime::Pressure;
use crate::time::Timestamp;
use host::HostInfo;

/// The kubelet version niwa reports (the Kubernetes API it follows, and niwa's own version).
pub const KUBELET_VERSION: &str = concat!("v1.33.0-niwa.", env!("CARGO_PKG_VERSION"));

/// Labels the kubelet puts on its Node.
pub fn node_labels(
    id: &NodeIdentity,
    config: &KubeletConfig,
    host: &HostInfo,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("kubernetes.io/hostname".to_string(), id.name.clone());
    labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
    labels.insert("kubernetes.io/arch".to_string(), host.arch.clone());
    labels.insert("beta.kubernetes.io/os".to_string(), "linux".to_string());
    labels.insert("beta.kubernetes.io/arch".to_string(), host.arch.clone());
    if config.runtime == RuntimeKind::Sim {
        // As kwok marks its nodes, so workloads can target (or avoid) simulated nodes.
        labels.insert("type".to_string(), "kwok".to_string());
    }
    for role in &config.roles {
        labels.insert(format!("node-role.kubernetes.io/{role}"), String::new());
    }
    labels.extend(config.labels.clone());
    labels
}

fn resources(c: &Capacity) -> serde_json::Value {
    json!({
        "cpu": c.cpu,
        "memory": c.memory,
        "pods": c.pods.to_string(),
        "ephemeral-storage": c.ephemeral_storage,
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    })
}

/// One node condition, keeping its transition time when its status did not change.
fn condition(
    type_: &str,
    ok_when_false: bool,
    active: bool,
    reasons: (&str, &str, &str, &str),
    previous: Option<&[NodeCondition]>,
    now: Timestamp,
) -> NodeCondition {
    let status = if active { "True" } else { "False" };
    let (reason, message) = if active == ok_when_false {
        (reasons.2, reasons.3)
    } else {
        (reasons.0, reasons.1)
    };
    let transition = previous
        .and_then(|p| p.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(transition),
    }
}

/// The node conditions the kubelet reports, in its order.
pub fn node_conditions(
    pressure: Pressure,
    previous: Option<&[NodeCondition]>,
    now: Timestamp,
) -> Vec<NodeCondition> {
    vec![
        condition(
            "MemoryPressure",
            true,
            pressure.memory,
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            previous,
            now,
        ),
        condition(
            "DiskPressure",
            true,
            pressure.disk,
            (
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
            ),
            previous,
            now,
        ),
        condition(
            "PIDPressure",
            true,
            pressure.pid,
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            previous,
            now,
        ),
        condition(
            "Ready",
            false,
            true,
            (
                "KubeletReady",
                "kubelet is posting ready status",
                "KubeletNotReady",
                "kubelet is not ready",
            ),
            previous,
            now,
        ),
    ]
}

/// What a node reports about itself besides its identity.
#[derive(Clone, Copy, Debug)]
pub struct NodeFacts<'a> {
    pub host: &'a HostInfo,
    pub capacity: &'a Capacity,
    pub kubelet_port: u16,
}

/// The node's status: capacity, allocatable, conditions, addresses, daemonEndpoints, nodeInfo.
pub fn node_status(
    id: &NodeIdentity,
    config: &KubeletConfig,
    facts: &NodeFacts<'_>,
    pressure: Pressure,
    previous: Option<&[NodeCondition]>,
    now: Timestamp,
) -> NodeStatus {
    let (host, capacity, kubelet_port) = (facts.host, facts.capacity, facts.kubelet_port);
    let value = json!({
        "capacity": resources(capacity),
        "allocatable": resources(capacity),
        "addresses": [
            {"type": "InternalIP", "address": id.ip.to_string()},
            {"type": "Hostname", "address": id.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": host.machine_id_for(&id.name),
            "systemUUID": host.system_uuid_for(&id.name),
            "bootID": host.boot_id,
            "kernelVersion": host.kernel_version,
            "osImage": host.os_image,
            "containerRuntimeVersion": format!("niwa-{}://{}", config.runtime.as_str(), env!("CARGO_PKG_VERSION")),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": host.arch,
        },
    });
    let mut status: NodeStatus = serde_json::from_value(value).unwrap_or_default();
    status.conditions = Some(node_conditions(pressure, previous, now));
    status
}

/// The Node object to register.
pub fn node_object(id: &NodeIdentity, config: &KubeletConfig, host: &HostInfo) -> Node {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": id.name,
            "labels": node_labels(id, config, host),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": id.pod_cidr.to_string(), "podCIDRs": [id.pod_cidr.to_string()]},
    });
    serde_json::from_value(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::PodCidr;

    #[test]
    fn node_object_and_status_look_like_a_kubelets() {
        let config = KubeletConfig::new("http://127.0.0.1:6443", RuntimeKind::Process);
        let id = NodeIdentity {
            name: "node-1".into(),
            ip: Ipv4Addr::new(127, 1, 0, 1),
            pod_cidr: PodCidr {
                base: Ipv4Addr::new(127, 244, 1, 0),
            },
        };
        let host = HostInfo::fake();
        let node = node_object(&id, &config, &host);
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("kubernetes.io/hostname").map(String::as_str),
            Some("node-1")
        );
        assert_eq!(
            labels.get("kubernetes.io/os").map(String::as_str),
            Some("linux")
        );
        assert_eq!(
            node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()),
            Some("127.244.1.0/24")
        );
        let now = Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH);
        let capacity = Capacity::default();
        let facts = NodeFacts {
            host: &host,
            capacity: &capacity,
            kubelet_port: 10250,
        };
        let status = node_status(&id, &config, &facts, Pressure::default(), None, now);
        let v = serde_json::to_value(&status).unwrap_or_default();
        assert_eq!(v["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(
            v["addresses"][0],
            json!({"type": "InternalIP", "address": "127.1.0.1"})
        );
        assert_eq!(v["capacity"]["pods"], "110");
        let ready = &v["conditions"][3];
        assert_eq!(
            (
                ready["type"].as_str(),
                ready["status"].as_str(),
                ready["reason"].as_str()
            ),
            (Some("Ready"), Some("True"), Some("KubeletReady"))
        );
        assert_eq!(v["conditions"][0]["reason"], "KubeletHasSufficientMemory");
        // Transition times survive an unchanged status; a change moves them.
        let later = after_secs(now, 60);
        let again = node_status(
            &id,
            &config,
            &facts,
            Pressure {
                memory: true,
                ..Pressure::default()
            },
            status.conditions.as_deref(),
            later,
        );
        let c = again.conditions.unwrap_or_default();
        assert_eq!(c[0].last_transition_time.as_ref().map(|t| t.0), Some(later));
        assert_eq!(c[0].reason.as_deref(), Some("KubeletHasInsufficientMemory"));
        assert_eq!(c[1].last_transition_time.as_ref().map(|t| t.0), Some(now));
        assert_eq!(c[1].last_heartbeat_time.as_ref().map(|t| t.0), Some(later));
    }

    fn after_secs(t: Timestamp, s: u64) -> Timestamp {
        crate::time::after(t, std::time::Duration::from_secs(s))
    }
}
