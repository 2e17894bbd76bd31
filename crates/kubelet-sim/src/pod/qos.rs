//! A pod's QoS class (`status.qosClass`), computed as Kubernetes' `GetPodQOS` does from the cpu and
//! memory requests and limits of all its containers (init containers included).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;

use niwa_api::quantity::Quantity;

const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        let resources = c.resources.as_ref();
        let c_limits = resources.and_then(|r| r.limits.as_ref());
        // Requests default to limits (the apiserver's defaulting), so take limits when unset.
        let c_requests = resources.and_then(|r| r.requests.as_ref()).or(c_limits);
        let mut found_limits = 0;
        for name in QOS_RESOURCES {
            let request = c_requests
                .and_then(|r| r.get(name))
                .or_else(|| c_limits.and_then(|l| l.get(name)))
                .and_then(|q| Quantity::parse(&q.0).ok())
                .map(|q| q.milli())
                .filter(|q| *q != 0);
            if let Some(q) = request {
                *requests.entry(name).or_default() += q;
            }
            let limit = c_limits
                .and_then(|l| l.get(name))
                .and_then(|q| Quantity::parse(&q.0).ok());
            if let Some(q) = limit.map(|q| q.milli()).filter(|q| *q != 0) {
                found_limits += 1;
                *limits.entry(name).or_default() += q;
            }
        }
        if found_limits != QOS_RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(name, q)| limits.get(name) == Some(q))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            ..Default::default()
        }
    }

    #[test]
    fn classes() {
        assert_eq!(qos_class(&spec(vec![Container::default()])), "BestEffort");
        assert_eq!(
            qos_class(&spec(vec![container(
                &[],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(vec![container(
                &[("cpu", "1000m"), ("memory", "1024Mi")],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(vec![container(&[("cpu", "100m")], &[])])),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(vec![container(
                &[("cpu", "500m")],
                &[("cpu", "1"), ("memory", "1Gi")]
            )])),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(vec![
                container(&[], &[("cpu", "1"), ("memory", "1Gi")]),
                Container::default()
            ])),
            "Burstable"
        );
    }
}
