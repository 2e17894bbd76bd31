//! Semantic equality of pod templates, as Kubernetes' `apiequality.Semantic.DeepEqual` sees Go
//! structs: a non-pointer Go bool that is `false` is the same as an absent one (Go's JSON omits it,
//! so kubectl's `rollout undo` patch never carries `stdin: false`), and an empty list is the same as
//! none. Comparing the JSON forms after [`normalize`] finds "the ReplicaSet of this template" the
//! way the Deployment controller must, whichever client wrote the template.

use serde_json::Value;

/// Fields of the pod template that are non-pointer `bool`s in Kubernetes' Go types (a `false`
/// there means "unset"). Pointer bools (`automountServiceAccountToken`, `privileged`, …) are not
/// listed: for them `false` differs from absent.
const NON_POINTER_BOOLS: &[&str] = &[
    "stdin",
    "stdinOnce",
    "tty",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "readOnly",
];

fn is_zero(key: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(false) => NON_POINTER_BOOLS.contains(&key),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The value with Go zero-value noise removed (see the module docs).
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !is_zero(k, v))
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_zero_values_compare_equal() {
        let written_by_kubectl = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}});
        let stored = json!({"spec": {"containers": [{"name": "c", "image": "x", "stdin": false, "tty": false, "env": []}], "hostNetwork": false}});
        assert_eq!(normalize(&written_by_kubectl), normalize(&stored));
        // Pointer bools and real values still count.
        let a = json!({"spec": {"automountServiceAccountToken": false}});
        assert_ne!(normalize(&a), normalize(&json!({"spec": {}})));
        let b = json!({"spec": {"containers": [{"name": "c", "stdin": true}]}});
        assert_ne!(
            normalize(&b),
            normalize(&json!({"spec": {"containers": [{"name": "c"}]}}))
        );
    }
}
