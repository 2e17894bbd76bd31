//! Kubernetes `Status` errors: the one error type of the API surface, with the reason, HTTP code and
//! field causes Kubernetes uses, so that kubectl and client code react to niwa's errors exactly as to
//! a real apiserver's. Converted to gRPC statuses (details carry the Status JSON) in one place.

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// `metav1.StatusReason` values niwa produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    AlreadyExists,
    Conflict,
    Invalid,
    BadRequest,
    Expired,
    Gone,
    MethodNotAllowed,
    Forbidden,
    UnsupportedMediaType,
    RequestEntityTooLarge,
    Timeout,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Invalid => "Invalid",
            Reason::BadRequest => "BadRequest",
            Reason::Expired => "Expired",
            Reason::Gone => "Gone",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::Forbidden => "Forbidden",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::Timeout => "Timeout",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::InternalError => "InternalError",
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Invalid => 422,
            Reason::BadRequest => 400,
            Reason::Expired | Reason::Gone => 410,
            Reason::MethodNotAllowed => 405,
            Reason::Forbidden => 403,
            Reason::UnsupportedMediaType => 415,
            Reason::RequestEntityTooLarge => 413,
            Reason::Timeout => 504,
            Reason::TooManyRequests => 429,
            Reason::ServiceUnavailable => 503,
            Reason::InternalError => 500,
        }
    }

    fn from_str(s: &str) -> Reason {
        match s {
            "NotFound" => Reason::NotFound,
            "AlreadyExists" => Reason::AlreadyExists,
            "Conflict" => Reason::Conflict,
            "Invalid" => Reason::Invalid,
            "BadRequest" => Reason::BadRequest,
            "Expired" => Reason::Expired,
            "Gone" => Reason::Gone,
            "MethodNotAllowed" => Reason::MethodNotAllowed,
            "Forbidden" => Reason::Forbidden,
            "UnsupportedMediaType" => Reason::UnsupportedMediaType,
            "RequestEntityTooLarge" => Reason::RequestEntityTooLarge,
            "Timeout" => Reason::Timeout,
            "TooManyRequests" => Reason::TooManyRequests,
            "ServiceUnavailable" => Reason::ServiceUnavailable,
            _ => Reason::InternalError,
        }
    }
}

/// One invalid field (`metav1.StatusCause`): `reason` is e.g. `FieldValueRequired`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn required(field: &str) -> Cause {
        Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: field.into(),
        }
    }

    pub fn invalid(field: &str, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value:?}: {detail}"),
            field: field.into(),
        }
    }

    pub fn duplicate(field: &str, value: &str) -> Cause {
        Cause {
            reason: "FieldValueDuplicate".into(),
            message: format!("Duplicate value: {value:?}"),
            field: field.into(),
        }
    }

    pub fn unsupported(field: &str, value: &str, allowed: &[&str]) -> Cause {
        let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {value:?}: supported values: {}",
                allowed.join(", ")
            ),
            field: field.into(),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    /// The same cause with a detail appended to its message (`Required value: detail`).
    pub fn with_detail(mut self, detail: &str) -> Cause {
        self.message = format!("{}: {detail}", self.message);
        self
    }

    /// `field: message`, the form Kubernetes prints inside an Invalid message.
    pub fn to_line(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A failed API call, as a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind`.
    pub name: String,
    pub group: String,
    pub kind: String,
    pub causes: Vec<Cause>,
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> ApiError {
        ApiError {
            reason,
            message: message.into(),
            name: String::new(),
            group: String::new(),
            kind: String::new(),
            causes: Vec::new(),
        }
    }

    fn about(mut self, info: &ResourceInfo, name: &str) -> ApiError {
        self.name = name.into();
        self.group = info.group.into();
        self.kind = info.plural.into();
        self
    }

    fn qualified(info: &ResourceInfo) -> String {
        if info.group.is_empty() {
            info.plural.to_string()
        } else {
            format!("{}.{}", info.plural, info.group)
        }
    }

    /// `pods "web" not found`
    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::new(
            Reason::NotFound,
            format!("{} {name:?} not found", Self::qualified(info)),
        )
        .about(info, name)
    }

    /// `pods "web" already exists`
    pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::new(
            Reason::AlreadyExists,
            format!("{} {name:?} already exists", Self::qualified(info)),
        )
        .about(info, name)
    }

    /// The optimistic-concurrency failure kubectl and controllers retry on.
    pub fn conflict(info: &ResourceInfo, name: &str, detail: &str) -> ApiError {
        ApiError::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {detail}",
                Self::qualified(info)
            ),
        )
        .about(info, name)
    }

    pub fn stale(info: &ResourceInfo, name: &str) -> ApiError {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Pod "web" is invalid: [a: Required value, b: Invalid value: ...]`, every cause listed.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
        let mut err = ApiError::invalid_kind(info.kind, name, causes);
        err.group = info.group.into();
        err
    }

    /// An Invalid error about something that is not a served resource (`PatchOptions.meta.k8s.io`).
    pub fn invalid_kind(kind: &str, name: &str, causes: Vec<Cause>) -> ApiError {
        let lines: Vec<String> = causes.iter().map(Cause::to_line).collect();
        let joined = if lines.len() == 1 {
            lines[0].clone()
        } else {
            format!("[{}]", lines.join(", "))
        };
        let mut err = ApiError::new(
            Reason::Invalid,
            format!("{kind} {name:?} is invalid: {joined}"),
        );
        err.name = name.into();
        err.kind = kind.into();
        err.causes = causes;
        err
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(Reason::BadRequest, message)
    }

    /// A watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(Reason::Expired, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            Reason::InternalError,
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    /// The `Status` object (kind Status, apiVersion v1) as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        let mut details = serde_json::Map::new();
        if !self.name.is_empty() {
            details.insert("name".into(), json!(self.name));
        }
        if !self.group.is_empty() {
            details.insert("group".into(), json!(self.group));
        }
        if !self.kind.is_empty() {
            details.insert("kind".into(), json!(self.kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }

    /// Reads a `Status` JSON back (the client side of the gRPC API).
    pub fn from_status(status: &Value) -> ApiError {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let details = &status["details"];
        let causes = details["causes"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| Cause {
                        reason: s(&c["reason"]),
                        message: s(&c["message"]),
                        field: s(&c["field"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiError {
            reason: Reason::from_str(status["reason"].as_str().unwrap_or_default()),
            message: s(&status["message"]),
            name: s(&details["name"]),
            group: s(&details["group"]),
            kind: s(&details["kind"]),
            causes,
        }
    }

    /// gRPC status carrying the Kubernetes Status JSON in its details.
    pub fn to_grpc(&self) -> tonic::Status {
        use tonic::Code;
        let code = match self.reason {
            Reason::NotFound => Code::NotFound,
            Reason::AlreadyExists => Code::AlreadyExists,
            Reason::Conflict => Code::Aborted,
            Reason::Invalid | Reason::BadRequest | Reason::UnsupportedMediaType => {
                Code::InvalidArgument
            }
            Reason::Expired | Reason::Gone => Code::OutOfRange,
            Reason::MethodNotAllowed => Code::Unimplemented,
            Reason::Forbidden => Code::PermissionDenied,
            Reason::RequestEntityTooLarge | Reason::TooManyRequests => Code::ResourceExhausted,
            Reason::Timeout => Code::DeadlineExceeded,
            Reason::ServiceUnavailable => Code::Unavailable,
            Reason::InternalError => Code::Internal,
        };
        let details = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        tonic::Status::with_details(code, self.message.clone(), details.into())
    }

    /// The inverse of [`ApiError::to_grpc`]; statuses without Status details become InternalError
    /// (or ServiceUnavailable for transport failures).
    pub fn from_grpc(status: &tonic::Status) -> ApiError {
        if let Ok(v) = serde_json::from_slice::<Value>(status.details())
            && v.get("kind").and_then(Value::as_str) == Some("Status")
        {
            return ApiError::from_status(&v);
        }
        match status.code() {
            tonic::Code::Unavailable => ApiError::new(Reason::ServiceUnavailable, status.message()),
            _ => ApiError::internal(status.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn messages_match_kubernetes() {
        let pods = Registry
            .resolve("pods")
            .cloned()
            .unwrap_or_else(|| Registry.all()[0].clone());
        assert_eq!(
            ApiError::not_found(&pods, "web").message,
            "pods \"web\" not found"
        );
        let deploy = Registry
            .resolve("deploy")
            .cloned()
            .unwrap_or_else(|| Registry.all()[0].clone());
        assert_eq!(
            ApiError::already_exists(&deploy, "x").message,
            "deployments.apps \"x\" already exists"
        );
        let err = ApiError::invalid(
            &pods,
            "web",
            vec![
                Cause::required("spec.containers"),
                Cause::invalid("metadata.name", "Web", "must be lowercase"),
            ],
        );
        assert_eq!(
            err.message,
            "Pod \"web\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"Web\": must be lowercase]"
        );
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["causes"][0]["field"], "spec.containers");
        assert_eq!(ApiError::from_status(&status), err);
        assert_eq!(ApiError::from_grpc(&err.to_grpc()), err);
    }
}
