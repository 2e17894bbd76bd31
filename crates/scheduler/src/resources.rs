//! Resource arithmetic: what a pod requests (kube's `resourcehelper.PodRequests`: sum of the app
//! containers and sidecars, at least the largest init-container phase, plus pod overhead) and what a
//! node can allocate.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use niwa_api::quantity::Quantity as Parsed;

/// Thousandths of a unit (apimachinery's MilliValue), exact for every suffix Kubernetes allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Milli(i128);

impl Milli {
    fn parse(q: &Quantity) -> Milli {
        // Unparseable quantities count as 0: the apiserver validates them, and a bad one must
        // not take the scheduler down.
        Milli(Parsed::parse(&q.0).map(|p| p.milli()).unwrap_or(0))
    }

    fn milli_value(self) -> i64 {
        self.0.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    fn value(self) -> i64 {
        Parsed::from_milli(self.0)
            .value()
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// Scoring's stand-in for a container that requests no cpu (kube's `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Scoring's stand-in for a container that requests no memory (200 MiB, `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Only meaningful for allocatable: the node's `pods` capacity.
    pub allowed_pod_number: i64,
    /// Extended resources (`example.com/gpu`), hugepages and attachable volumes, sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resource {
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (name, v) in &other.scalar {
            self.add_scalar(name, *v);
        }
    }

    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (name, v) in &other.scalar {
            self.add_scalar(name, -*v);
        }
    }

    fn add_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 += v,
            Err(i) => self.scalar.insert(i, (name.to_string(), v)),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }

    /// Converts a `ResourceList` (requests, allocatable) with kube's rounding: cpu to millicores
    /// rounded up, everything else to whole units rounded up. Unparseable quantities count as 0
    /// (the apiserver validates them; a bad one must not take the scheduler down).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        let nanos: BTreeMap<String, Milli> = list
            .iter()
            .map(|(k, q)| (k.clone(), Milli::parse(q)))
            .collect();
        Resource::from_nanos(&nanos)
    }

    fn from_nanos(list: &BTreeMap<String, Milli>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli_value(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                "pods" => r.allowed_pod_number = q.value(),
                n if is_scalar_resource_name(n) => r.add_scalar(n, q.value()),
                _ => {}
            }
        }
        r
    }
}

/// kube's `IsScalarResourceName`: extended resources, hugepages, attachable volumes.
pub fn is_scalar_resource_name(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/')
            && !name.starts_with("kubernetes.io/")
            && !name.contains(".kubernetes.io/")
            && !name.starts_with("requests."))
}

/// What a node can allocate (`status.allocatable`).
pub fn node_allocatable(node: &Node) -> Resource {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .map(Resource::from_list)
        .unwrap_or_default()
}

/// A pod's requests as the scheduler accounts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// The real requests (fit filtering, `NodeInfo.Requested`).
    pub requested: Resource,
    /// Requests with 100m cpu / 200Mi memory for containers that name none (least-allocated scoring).
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
}

/// Computes a pod's requests, exactly as `resourcehelper.PodRequests` + `calculateResource`.
pub fn pod_requests(pod: &Pod) -> PodRequests {
    let requested = Resource::from_nanos(&aggregate(pod, false));
    let non_zero = aggregate(pod, true);
    PodRequests {
        requested,
        non_zero_milli_cpu: non_zero
            .get("cpu")
            .copied()
            .unwrap_or_default()
            .milli_value(),
        non_zero_memory: non_zero.get("memory").copied().unwrap_or_default().value(),
    }
}

type List = BTreeMap<String, Milli>;

fn container_requests(c: &Container, non_missing: bool) -> List {
    let mut out: List = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(|reqs| {
            reqs.iter()
                .map(|(k, q)| (k.clone(), Milli::parse(q)))
                .collect()
        })
        .unwrap_or_default();
    if non_missing {
        out.entry("cpu".into())
            .or_insert(Milli(DEFAULT_MILLI_CPU_REQUEST as i128));
        out.entry("memory".into())
            .or_insert(Milli(DEFAULT_MEMORY_REQUEST as i128 * 1000));
    }
    out
}

fn add_list(to: &mut List, from: &List) {
    for (k, v) in from {
        to.entry(k.clone()).or_default().0 += v.0;
    }
}

fn max_list(to: &mut List, from: &List) {
    for (k, v) in from {
        let e = to.entry(k.clone()).or_default();
        if v.0 > e.0 {
            *e = *v;
        }
    }
}

fn aggregate(pod: &Pod, non_missing: bool) -> List {
    let mut reqs = List::new();
    let Some(spec) = pod.spec.as_ref() else {
        return reqs;
    };
    for c in &spec.containers {
        add_list(&mut reqs, &container_requests(c, non_missing));
    }
    // InitContainerUse(i) = sum(restartable init containers before i) + init container i.
    let mut sidecars = List::new();
    let mut init_max = List::new();
    for c in spec.init_containers.iter().flatten() {
        let creq = container_requests(c, non_missing);
        let phase = if c.restart_policy.as_deref() == Some("Always") {
            add_list(&mut reqs, &creq);
            add_list(&mut sidecars, &creq);
            sidecars.clone()
        } else {
            let mut tmp = creq;
            add_list(&mut tmp, &sidecars);
            tmp
        };
        max_list(&mut init_max, &phase);
    }
    max_list(&mut reqs, &init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        for (k, q) in overhead {
            reqs.entry(k.clone()).or_default().0 += Milli::parse(q).0;
        }
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    fn c(name: &str, cpu: Option<&str>, mem: Option<&str>) -> serde_json::Value {
        let mut req = serde_json::Map::new();
        if let Some(cpu) = cpu {
            req.insert("cpu".into(), json!(cpu));
        }
        if let Some(mem) = mem {
            req.insert("memory".into(), json!(mem));
        }
        json!({"name": name, "image": "i", "resources": {"requests": req}})
    }

    #[test]
    fn containers_are_summed() {
        let p = pod(
            json!({"containers": [c("a", Some("100m"), Some("1Gi")), c("b", Some("250m"), None)]}),
        );
        let r = pod_requests(&p);
        assert_eq!(r.requested.milli_cpu, 350);
        assert_eq!(r.requested.memory, 1 << 30);
        assert_eq!(r.non_zero_milli_cpu, 350);
        assert_eq!(r.non_zero_memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn init_containers_set_a_floor() {
        let p = pod(json!({
            "initContainers": [c("i1", Some("2"), Some("100Mi")), c("i2", Some("500m"), Some("3Gi"))],
            "containers": [c("a", Some("1"), Some("1Gi"))],
        }));
        let r = pod_requests(&p).requested;
        assert_eq!(r.milli_cpu, 2000, "max(sum containers, max init)");
        assert_eq!(r.memory, 3 << 30);
    }

    #[test]
    fn sidecars_add_to_containers_and_to_later_init_phases() {
        let mut sidecar = c("side", Some("500m"), Some("100Mi"));
        sidecar["restartPolicy"] = json!("Always");
        let p = pod(json!({
            "initContainers": [sidecar, c("late", Some("1800m"), None)],
            "containers": [c("a", Some("1"), Some("1Gi"))],
            "overhead": {"cpu": "100m", "memory": "10Mi"},
        }));
        let r = pod_requests(&p).requested;
        // containers 1000 + sidecar 500 = 1500 < init phase 1800 + 500 = 2300; + overhead 100.
        assert_eq!(r.milli_cpu, 2400);
        assert_eq!(r.memory, (1 << 30) + (100 << 20) + (10 << 20));
    }

    #[test]
    fn best_effort_pods_score_with_defaults() {
        let p = pod(json!({"containers": [c("a", None, None), c("b", None, None)]}));
        let r = pod_requests(&p);
        assert!(r.requested.is_zero());
        assert_eq!(r.non_zero_milli_cpu, 200);
        assert_eq!(r.non_zero_memory, 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn extended_resources_and_allocatable() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110",
                "example.com/gpu": "2", "hugepages-2Mi": "0", "ephemeral-storage": "10G"}}
        }))
        .expect("node");
        let a = node_allocatable(&node);
        assert_eq!(
            (a.milli_cpu, a.memory, a.allowed_pod_number),
            (4000, 8 << 30, 110)
        );
        assert_eq!(a.scalar("example.com/gpu"), 2);
        assert_eq!(a.ephemeral_storage, 10_000_000_000);
    }
}
