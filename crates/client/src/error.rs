//! The client's one error type: an API error (a Kubernetes `Status` from the apiserver), a
//! transport failure, or an object that could not be encoded or decoded.

use niwa_api::{ApiError, Reason};

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The apiserver answered with a Kubernetes `Status` (NotFound, Conflict, Invalid, ...).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The request did not get an answer from the apiserver: connection refused or lost, stream
    /// reset, deadline exceeded.
    #[error("transport error: {0}")]
    Transport(String),
    /// The server URL is not usable.
    #[error("invalid server address {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// An object could not be turned into JSON.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The apiserver sent something this client cannot read as the expected type.
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The Kubernetes `Status` of an API error.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(err) => Some(err),
            _ => None,
        }
    }

    fn reason(&self) -> Option<Reason> {
        self.api().map(|e| e.reason)
    }

    /// 404: the object (or the resource) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.reason() == Some(Reason::NotFound)
    }

    /// 409 Conflict: a stale resourceVersion (retry with a fresh read) or a failed precondition.
    pub fn is_conflict(&self) -> bool {
        self.reason() == Some(Reason::Conflict)
    }

    /// 409 AlreadyExists: a create of a name that is taken.
    pub fn is_already_exists(&self) -> bool {
        self.reason() == Some(Reason::AlreadyExists)
    }

    /// 410: the resourceVersion is too old (compacted); re-list.
    pub fn is_expired(&self) -> bool {
        matches!(self.reason(), Some(Reason::Expired | Reason::Gone))
    }

    /// 422: validation failed; [`ApiError::causes`] names every bad field.
    pub fn is_invalid(&self) -> bool {
        self.reason() == Some(Reason::Invalid)
    }

    /// The request never got an answer (worth retrying later).
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport(_))
            || matches!(
                self.reason(),
                Some(Reason::ServiceUnavailable | Reason::Timeout | Reason::TooManyRequests)
            )
    }

    /// The HTTP status code of an API error.
    pub fn code(&self) -> Option<u16> {
        self.api().map(ApiError::code)
    }

    /// Converts a gRPC status: one carrying a Kubernetes `Status` is an API error, anything else
    /// failed on the way.
    pub fn from_grpc(status: tonic::Status) -> Error {
        let has_status = serde_json::from_slice::<serde_json::Value>(status.details())
            .ok()
            .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status"));
        if has_status {
            return Error::Api(ApiError::from_grpc(&status));
        }
        match status.code() {
            tonic::Code::Unimplemented => Error::Api(ApiError::new(
                Reason::MethodNotAllowed,
                format!(
                    "the server does not support this call: {}",
                    status.message()
                ),
            )),
            _ => Error::Transport(format!(
                "{}: {}",
                code_name(status.code()),
                status.message()
            )),
        }
    }

    pub(crate) fn decode(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Decode {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn encode(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Encode {
            what: what.into(),
            source,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Error {
        Error::from_grpc(status)
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DeadlineExceeded => "deadline exceeded",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::Internal => "internal",
        tonic::Code::Unknown => "unknown",
        _ => "failed",
    }
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_statuses_with_a_kubernetes_status_are_api_errors() {
        let err = ApiError::new(Reason::Conflict, "stale");
        let converted = Error::from_grpc(err.to_grpc());
        assert!(converted.is_conflict());
        assert_eq!(converted.code(), Some(409));
        assert!(!converted.is_transport());

        let transport = Error::from_grpc(tonic::Status::unavailable("connection refused"));
        assert!(transport.is_transport());
        assert!(!transport.is_not_found());
        assert_eq!(
            transport.to_string(),
            "transport error: unavailable: connection refused"
        );
    }
}
