//! Responses: objects in the negotiated format, `Warning` headers, and the one place an
//! [`ApiError`] becomes an HTTP response (a Kubernetes `Status` with its code).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use niwa_api::{ApiError, Reason};
use serde_json::Value;

use super::media::{self, Output};

/// A JSON (or other) body with its Content-Type and status.
pub fn bytes(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

/// `value` as JSON, or YAML when the client asked for it.
pub fn value(status: StatusCode, output: Output, value: &Value) -> Response {
    match output {
        Output::Yaml => match serde_yaml_ng::to_string(value) {
            Ok(text) => bytes(status, media::YAML, text),
            Err(e) => error(&ApiError::internal(format!("cannot encode YAML: {e}"))),
        },
        _ => bytes(
            status,
            media::JSON,
            serde_json::to_vec(value).unwrap_or_default(),
        ),
    }
}

/// The Kubernetes `Status` of an error, with its HTTP code.
pub fn error(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    bytes(
        status,
        media::JSON,
        serde_json::to_vec(&err.to_status()).unwrap_or_default(),
    )
}

/// Adds `Warning: 299 - "<text>"` headers (kubectl prints them as `Warning: <text>`).
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

/// The fallback for paths nothing serves.
pub async fn not_found() -> Response {
    error(&ApiError::new(
        Reason::NotFound,
        "the server could not find the requested resource",
    ))
}

/// A plain-text answer (health checks).
pub fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
