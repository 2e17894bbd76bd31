//! Field selectors (`metadata.name=web,status.phase!=Running`): apimachinery's `fields.ParseSelector`
//! grammar (with `\,` `\=` `\\` escapes), the per-kind field sets Kubernetes supports, and matching
//! against an object in its JSON form.

use serde_json::Value;

use super::SelectorError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector; all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

/// Fields every kind supports.
const COMMON: &[&str] = &["metadata.name", "metadata.namespace"];

/// The extra fields Kubernetes supports per kind (pkg/registry/*/strategy.go `*ToSelectableFields`),
/// beyond `metadata.name` and `metadata.namespace`.
pub fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses a selector and checks every field is selectable for `kind`.
    pub fn parse(input: &str, kind: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_unescaped(input, ',') {
            if part.trim().is_empty() {
                continue;
            }
            let (field, value, equal) = split_requirement(&part)?;
            let field = field.trim().to_string();
            if !COMMON.contains(&field.as_str()) && !kind_fields(kind).contains(&field.as_str()) {
                return Err(SelectorError::UnsupportedField(field));
            }
            requirements.push(FieldRequirement {
                field,
                value: unescape(&value),
                equal,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether `object` (the JSON wire form) satisfies every requirement. Missing fields compare as
    /// the empty string, so `spec.nodeName=` selects unscheduled pods.
    pub fn matches(&self, object: &Value) -> bool {
        self.matches_with(|field| field_value(object, field))
    }

    /// Like [`FieldSelector::matches`], with field values from `value_of` (e.g. precomputed by a
    /// cache that keeps objects encoded).
    pub fn matches_with(&self, value_of: impl Fn(&str) -> String) -> bool {
        self.requirements
            .iter()
            .all(|r| (value_of(&r.field) == r.value) == r.equal)
    }

    /// The value an equality requirement pins `field` to, if any (lets callers narrow a store
    /// range, e.g. `metadata.namespace`).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.equal && r.field == field)
            .map(|r| r.value.as_str())
    }
}

/// The string form of a selectable field of an object.
pub fn field_value(object: &Value, field: &str) -> String {
    // Event's `source` is `source.component` in Kubernetes' field set.
    let path = if field == "source" {
        "source.component"
    } else {
        field
    };
    let mut cur = object;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits on `sep` not preceded by a backslash escape.
fn split_unescaped(input: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// `field!=value`, `field==value` or `field=value`, honouring escapes in the value.
fn split_requirement(part: &str) -> Result<(String, String, bool), SelectorError> {
    for (op, equal) in [("!=", false), ("==", true), ("=", true)] {
        if let Some(idx) = find_unescaped(part, op) {
            return Ok((
                part[..idx].to_string(),
                part[idx + op.len()..].to_string(),
                equal,
            ));
        }
    }
    Err(SelectorError::Parse(format!(
        "invalid field selector: '{part}': expected an operator (=, ==, !=)"
    )))
}

fn find_unescaped(s: &str, op: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(op) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn golden_pod_selectors() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-1", "hostNetwork": false},
            "status": {"phase": "Running"}
        });
        let pending = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {}});
        let cases = [
            ("spec.nodeName=node-1", true, false),
            ("spec.nodeName==node-1,status.phase!=Failed", true, false),
            ("spec.nodeName=", false, true),
            ("status.phase!=Running", false, true),
            (
                "metadata.name=web-1,metadata.namespace=default",
                true,
                false,
            ),
            ("spec.hostNetwork=false", true, false),
            ("", true, true),
        ];
        for (sel, want_pod, want_pending) in cases {
            let s = FieldSelector::parse(sel, "Pod");
            assert_eq!(s.as_ref().map(|s| s.matches(&pod)), Ok(want_pod), "{sel}");
            assert_eq!(
                s.as_ref().map(|s| s.matches(&pending)),
                Ok(want_pending),
                "{sel}"
            );
        }
    }

    #[test]
    fn unsupported_fields_and_escapes() {
        assert_eq!(
            FieldSelector::parse("spec.nodeName=x", "ConfigMap"),
            Err(SelectorError::UnsupportedField("spec.nodeName".into()))
        );
        assert!(FieldSelector::parse("metadata.name", "Pod").is_err());
        let s = FieldSelector::parse(r"metadata.name=a\,b", "ConfigMap");
        assert_eq!(
            s.map(|s| s.requirements[0].value.clone()),
            Ok("a,b".to_string())
        );
        let ev = json!({"involvedObject": {"kind": "Pod", "name": "web"}, "source": {"component": "kubelet"}});
        let s = FieldSelector::parse("involvedObject.kind=Pod,source=kubelet", "Event");
        assert_eq!(s.map(|s| s.matches(&ev)), Ok(true));
    }
}
