//! coordination.k8s.io Leases, events.k8s.io Events, policy PodDisruptionBudgets and autoscaling/v2
//! HorizontalPodAutoscalers.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Strategy, or, or_str, selector};
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::names;

impl Strategy for Lease {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Some(spec) = &self.spec else {
            return causes;
        };
        let p = Path::new("spec");
        if let Some(d) = spec.lease_duration_seconds
            && d <= 0
        {
            causes.push(field::invalid(
                &p.child("leaseDurationSeconds"),
                d,
                "must be greater than 0",
            ));
        }
        causes.extend(field::nonnegative(
            &p.child("leaseTransitions"),
            spec.lease_transitions.map(i64::from),
        ));
        if let Some(s) = spec.strategy.as_deref()
            && s != "OldestEmulationVersion"
        {
            causes.push(field::not_supported(
                &p.child("strategy"),
                s,
                &["OldestEmulationVersion"],
            ));
        }
        causes
    }
}

/// Limits of events.k8s.io/v1 (`ValidateEventCreate`).
const EVENT_FIELD_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

impl Strategy for Event {
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if self.event_time.is_none() {
            causes.push(field::required(&Path::new("eventTime"), ""));
        }
        let controller = self.reporting_controller.as_deref().unwrap_or_default();
        if controller.is_empty() {
            causes.push(field::required(&Path::new("reportingController"), ""));
        } else {
            for problem in names::qualified_name(controller) {
                causes.push(field::invalid(
                    &Path::new("reportingController"),
                    controller,
                    &problem,
                ));
            }
        }
        for (name, value) in [
            ("reportingInstance", &self.reporting_instance),
            ("action", &self.action),
            ("reason", &self.reason),
        ] {
            let v = value.as_deref().unwrap_or_default();
            if v.is_empty() {
                causes.push(field::required(&Path::new(name), ""));
            } else if v.len() > EVENT_FIELD_MAX {
                causes.push(field::too_long(&Path::new(name), EVENT_FIELD_MAX));
            }
        }
        match self.type_.as_deref() {
            Some("Normal") | Some("Warning") => {}
            other => causes.push(field::not_supported(
                &Path::new("type"),
                other.unwrap_or_default(),
                &["Normal", "Warning"],
            )),
        }
        if self.note.as_deref().is_some_and(|n| n.len() > NOTE_MAX) {
            causes.push(field::too_long(&Path::new("note"), NOTE_MAX));
        }
        let ns = self.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(r) = self.regarding.as_ref().and_then(|r| r.namespace.as_deref())
            && !r.is_empty()
            && r != ns
        {
            causes.push(field::invalid(
                &Path::new("regarding").child("namespace"),
                r,
                "does not match event.namespace",
            ));
        }
        causes
    }
}

fn int_or_percent(v: &IntOrString, path: &Path) -> Vec<Cause> {
    match v {
        IntOrString::Int(n) if *n < 0 => vec![field::invalid(path, *n, field::NEGATIVE)],
        IntOrString::Int(_) => Vec::new(),
        IntOrString::String(s) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) if (0..=100).contains(&p) => Vec::new(),
            Some(Ok(_)) => vec![field::invalid(
                path,
                s.as_str(),
                "must not be greater than 100%",
            )],
            _ => vec![field::invalid(
                path,
                s.as_str(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. \
                 '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )],
        },
    }
}

impl Strategy for PodDisruptionBudget {
    fn prepare_create(&mut self) {
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = Vec::new();
        if spec.min_available.is_some() && spec.max_unavailable.is_some() {
            causes.push(field::invalid(
                &path,
                field::Bad::Raw("policy.PodDisruptionBudgetSpec{...}".into()),
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        if let Some(v) = &spec.min_available {
            causes.extend(int_or_percent(v, &path.child("minAvailable")));
        }
        if let Some(v) = &spec.max_unavailable {
            causes.extend(int_or_percent(v, &path.child("maxUnavailable")));
        }
        if let Some(sel) = &spec.selector {
            causes.extend(selector::validate(sel, &path.child("selector")));
        }
        if let Some(p) = spec.unhealthy_pod_eviction_policy.as_deref()
            && p != "IfHealthyBudget"
            && p != "AlwaysAllow"
        {
            causes.push(field::not_supported(
                &path.child("unhealthyPodEvictionPolicy"),
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
        causes
    }
}

fn scaling_policy(ty: &str, value: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: ty.into(),
        value,
        period_seconds: 15,
    }
}

/// `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules`: fill what a given rule left unset.
fn default_rules(rules: &mut HPAScalingRules, up: bool) {
    or(
        &mut rules.stabilization_window_seconds,
        if up { 0 } else { 300 },
    );
    or_str(&mut rules.select_policy, "Max");
    if rules.policies.as_ref().is_none_or(Vec::is_empty) {
        rules.policies = Some(if up {
            vec![scaling_policy("Pods", 4), scaling_policy("Percent", 100)]
        } else {
            vec![scaling_policy("Percent", 100)]
        });
    }
}

impl Strategy for HorizontalPodAutoscaler {
    fn default(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        or(&mut spec.min_replicas, 1);
        if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
            spec.metrics = Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(80),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]);
        }
        if let Some(b) = spec.behavior.as_mut() {
            default_rules(b.scale_up.get_or_insert_with(Default::default), true);
            default_rules(b.scale_down.get_or_insert_with(Default::default), false);
        }
    }

    fn prepare_create(&mut self) {
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let Some(spec) = &self.spec else {
            return vec![field::required(&path, "")];
        };
        let mut causes = Vec::new();
        let target = path.child("scaleTargetRef");
        if spec.scale_target_ref.kind.is_empty() {
            causes.push(field::required(&target.child("kind"), ""));
        }
        if spec.scale_target_ref.name.is_empty() {
            causes.push(field::required(&target.child("name"), ""));
        }
        let min = spec.min_replicas.unwrap_or(1);
        if min < 1 {
            causes.push(field::invalid(
                &path.child("minReplicas"),
                min,
                "must be greater than or equal to 1",
            ));
        }
        if spec.max_replicas < 1 {
            causes.push(field::invalid(
                &path.child("maxReplicas"),
                spec.max_replicas,
                "must be greater than 0",
            ));
        } else if spec.max_replicas < min {
            causes.push(field::invalid(
                &path.child("maxReplicas"),
                spec.max_replicas,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        const METRIC_TYPES: &[&str] = &[
            "ContainerResource",
            "External",
            "Object",
            "Pods",
            "Resource",
        ];
        for (i, m) in spec.metrics.iter().flatten().enumerate() {
            if !METRIC_TYPES.contains(&m.type_.as_str()) {
                causes.push(field::not_supported(
                    &path.child("metrics").index(i).child("type"),
                    m.type_.as_str(),
                    METRIC_TYPES,
                ));
            }
        }
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hpa_and_pdb() {
        let mut hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}))
        .unwrap_or_default();
        hpa.default();
        assert!(hpa.validate().is_empty());
        let v = serde_json::to_value(&hpa).unwrap_or_default();
        assert_eq!(v["spec"]["minReplicas"], 1);
        assert_eq!(
            v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            v["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(v["spec"]["behavior"]["scaleUp"]["policies"][0]["value"], 4);

        let pdb: PodDisruptionBudget = serde_json::from_value(json!({"apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget", "metadata": {"name": "p", "namespace": "d"},
            "spec": {"minAvailable": 1, "maxUnavailable": "150%"}}))
        .unwrap_or_default();
        let fields: Vec<String> = pdb.validate().into_iter().map(|c| c.field).collect();
        assert_eq!(fields, vec!["spec", "spec.maxUnavailable"]);
    }
}
