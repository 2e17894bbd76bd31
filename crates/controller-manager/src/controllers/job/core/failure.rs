//! Failures: the pod failure policy (`matchPodFailurePolicy`) and the exponential backoff before a
//! failed Job's next pod.

use super::*;

/// The outcome of the pod failure policy for one failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FailureAction {
    FailJob(String),
    Ignore,
    Count,
}

/// Kubernetes' `matchPodFailurePolicy` (FailJob, Ignore, Count; FailIndex counts like Count here).
pub(super) fn match_failure_policy(job: &Job, p: &Pod) -> FailureAction {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return FailureAction::Count;
    };
    let statuses: Vec<_> = p
        .status
        .as_ref()
        .map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut matched = None;
        if let Some(req) = &rule.on_exit_codes {
            for cs in &statuses {
                if req.container_name.as_ref().is_some_and(|n| *n != cs.name) {
                    continue;
                }
                let Some(code) = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                if code == 0 {
                    continue;
                }
                let inside = req.values.contains(&code);
                let hit = match req.operator.as_str() {
                    "In" => inside,
                    "NotIn" => !inside,
                    _ => false,
                };
                if hit {
                    matched = Some(format!(
                        "Container {} for pod {}/{} failed with exit code {} matching {} rule at index {}",
                        cs.name,
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        p.metadata.name.as_deref().unwrap_or(""),
                        code,
                        rule.action,
                        i
                    ));
                    break;
                }
            }
        }
        if let Some(pats) = &rule.on_pod_conditions {
            let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
            for pat in pats {
                let want = pat.status.as_str();
                if conds
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == pat.type_ && c.status == want))
                {
                    matched = Some(format!(
                        "Pod {}/{} has condition {} matching {} rule at index {}",
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        p.metadata.name.as_deref().unwrap_or(""),
                        pat.type_,
                        rule.action,
                        i
                    ));
                    break;
                }
            }
        }
        if let Some(msg) = matched {
            return match rule.action.as_str() {
                "FailJob" => FailureAction::FailJob(msg),
                "Ignore" => FailureAction::Ignore,
                _ => FailureAction::Count,
            };
        }
    }
    FailureAction::Count
}

/// The backoff before the next pod may be created, after `failures` consecutive failures.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = failures.saturating_sub(1).min(16);
    (BACKOFF_BASE * 2u32.pow(exp)).min(BACKOFF_MAX)
}
