//! Field paths and field errors worded exactly as apimachinery's `field.Path` and `field.Error`
//! print them, so that `Invalid` Status causes read like a real apiserver's:
//! `spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive`.

use std::collections::BTreeMap;
use std::fmt;

use crate::status::Cause;

/// A path to a field: `spec.template.spec.containers[0].name`, `metadata.labels[app]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    pub fn new(root: &str) -> Path {
        Path(root.to_string())
    }

    /// `a.b` for a struct field.
    pub fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// `a[3]` for a list element.
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// `a[key]` for a map entry.
    pub fn key(&self, k: &str) -> Path {
        Path(format!("{}[{k}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bad value as Go's `%v`/`%q` renders it inside an error message.
#[derive(Debug, Clone, PartialEq)]
pub enum Bad {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Already rendered (Go's `%#v` of a struct, slice or map).
    Raw(String),
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bad::Str(s) => write!(f, "{}", go_quote(s)),
            Bad::Int(i) => write!(f, "{i}"),
            Bad::Bool(b) => write!(f, "{b}"),
            Bad::Raw(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Bad {
    fn from(s: &str) -> Bad {
        Bad::Str(s.to_string())
    }
}
impl From<&String> for Bad {
    fn from(s: &String) -> Bad {
        Bad::Str(s.clone())
    }
}
impl From<String> for Bad {
    fn from(s: String) -> Bad {
        Bad::Str(s)
    }
}
impl From<i64> for Bad {
    fn from(i: i64) -> Bad {
        Bad::Int(i)
    }
}
impl From<i32> for Bad {
    fn from(i: i32) -> Bad {
        Bad::Int(i64::from(i))
    }
}
impl From<bool> for Bad {
    fn from(b: bool) -> Bad {
        Bad::Bool(b)
    }
}

/// Go's `%q` of a string (close enough: Rust's debug escaping of printable ASCII is the same).
pub fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `%#v` of a `[]string`: `[]string{"a", "b"}`.
pub fn go_strings(items: &[String]) -> Bad {
    let inner: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    Bad::Raw(format!("[]string{{{}}}", inner.join(", ")))
}

/// Go's `%#v` of a `map[string]string`: `map[string]string{"app":"web"}` (keys sorted, as Go prints).
pub fn go_map(map: &BTreeMap<String, String>) -> Bad {
    let inner: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
        .collect();
    Bad::Raw(format!("map[string]string{{{}}}", inner.join(", ")))
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

fn cause(reason: &str, path: &Path, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: path.to_string(),
    }
}

/// `field.Required`: `Required value[: detail]`.
pub fn required(path: &Path, detail: &str) -> Cause {
    cause(
        "FieldValueRequired",
        path,
        with_detail("Required value".into(), detail),
    )
}

/// `field.Invalid`: `Invalid value: <value>[: detail]`.
pub fn invalid(path: &Path, value: impl Into<Bad>, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        path,
        with_detail(format!("Invalid value: {}", value.into()), detail),
    )
}

/// `field.NotSupported`: `Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(path: &Path, value: impl Into<Bad>, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    let detail = if list.is_empty() {
        String::new()
    } else {
        format!("supported values: {}", list.join(", "))
    };
    cause(
        "FieldValueNotSupported",
        path,
        with_detail(format!("Unsupported value: {}", value.into()), &detail),
    )
}

/// `field.Forbidden`: `Forbidden: detail`.
pub fn forbidden(path: &Path, detail: &str) -> Cause {
    cause(
        "FieldValueForbidden",
        path,
        with_detail("Forbidden".into(), detail),
    )
}

/// `field.Duplicate`: `Duplicate value: <value>`.
pub fn duplicate(path: &Path, value: impl Into<Bad>) -> Cause {
    cause(
        "FieldValueDuplicate",
        path,
        format!("Duplicate value: {}", value.into()),
    )
}

/// `field.NotFound`: `Not found: <value>`.
pub fn not_found(path: &Path, value: impl Into<Bad>) -> Cause {
    cause(
        "FieldValueNotFound",
        path,
        format!("Not found: {}", value.into()),
    )
}

/// `field.TooLong`: `Too long: may not be more than N bytes`.
pub fn too_long(path: &Path, max: usize) -> Cause {
    cause(
        "FieldValueTooLong",
        path,
        format!("Too long: may not be more than {max} bytes"),
    )
}

/// `field.TooMany`: `Too many: N: must have at most M items`.
pub fn too_many(path: &Path, actual: usize, max: usize) -> Cause {
    cause(
        "FieldValueTooMany",
        path,
        format!("Too many: {actual}: must have at most {max} items"),
    )
}

/// apimachinery's `IsNegativeErrorMsg`.
pub const NEGATIVE: &str = "must be greater than or equal to 0";
/// apimachinery's `FieldImmutableErrorMsg`.
pub const IMMUTABLE: &str = "field is immutable";

/// `ValidateNonnegativeField`.
pub fn nonnegative(path: &Path, value: Option<i64>) -> Vec<Cause> {
    match value {
        Some(v) if v < 0 => vec![invalid(path, v, NEGATIVE)],
        _ => Vec::new(),
    }
}

/// `ValidateImmutableField` for values compared by equality, rendered as `value`.
pub fn immutable<T: PartialEq>(path: &Path, new: &T, old: &T, value: impl Into<Bad>) -> Vec<Cause> {
    if new == old {
        Vec::new()
    } else {
        vec![invalid(path, value, IMMUTABLE)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_apimachinery() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("ports")
            .index(1);
        assert_eq!(
            invalid(
                &p.child("containerPort"),
                70000i64,
                "must be between 1 and 65535, inclusive"
            )
            .to_line(),
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            required(&Path::new("spec").child("containers"), "").to_line(),
            "spec.containers: Required value"
        );
        assert_eq!(
            not_supported(
                &Path::new("spec").child("restartPolicy"),
                "x",
                &["Always", "OnFailure", "Never"]
            )
            .to_line(),
            "spec.restartPolicy: Unsupported value: \"x\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            Path::new("metadata").child("labels").key("app").as_str(),
            "metadata.labels[app]"
        );
        let m: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        assert_eq!(go_map(&m).to_string(), "map[string]string{\"app\":\"web\"}");
        assert_eq!(
            go_strings(&["10.0.0.1".into()]).to_string(),
            "[]string{\"10.0.0.1\"}"
        );
    }
}
