//! `/version`, the health checks (`/healthz`, `/livez`, `/readyz`, with `?verbose`), `/metrics`,
//! and the OpenAPI v3 documents.
//!
//! niwa reports the Kubernetes version whose API it implements (k8s-openapi's `v1_33` feature):
//! the installed kubectl is a dispatcher that runs the kubectl matching the server's `minor`
//! (kubectl-wire.md §0.1), so `minor: "33"` makes it run kubectl 1.33.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::respond;
use super::{HttpApi, media, openapi};

pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";
/// A semver kubectl can parse; the build metadata says which server this is.
pub const GIT_VERSION: &str = "v1.33.0+niwa";

pub async fn version() -> Response {
    let body = json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T00:00:00Z",
        "goVersion": concat!("rust (niwa ", env!("CARGO_PKG_VERSION"), ")"),
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, goarch()),
    });
    respond::value(StatusCode::OK, media::Output::Json, &body)
}

/// Go's name for the machine architecture (what `platform` carries).
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// `[+]name ok` lines and the verdict, as Kubernetes prints them with `?verbose`.
fn checks(kind: &str, results: &[(&str, Result<(), String>)], verbose: bool) -> Response {
    let healthy = results.iter().all(|(_, r)| r.is_ok());
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if !verbose && healthy {
        return respond::text(status, "ok".into());
    }
    let mut out = String::new();
    for (name, r) in results {
        match r {
            Ok(()) => out.push_str(&format!("[+]{name} ok\n")),
            Err(e) => out.push_str(&format!("[-]{name} failed: {e}\n")),
        }
    }
    if healthy {
        out.push_str(&format!("{kind} check passed\n"));
    } else {
        out.push_str(&format!("{kind} check failed\n"));
    }
    respond::text(status, out)
}

fn verbose(q: &Option<String>) -> bool {
    q.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    })
}

async fn store_check(api: &HttpApi) -> Result<(), String> {
    let probe = api.rest().storage().current_revision();
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the store did not answer within 2s".into()),
    }
}

pub async fn healthz(State(api): State<HttpApi>, RawQuery(q): RawQuery) -> Response {
    let etcd = store_check(&api).await;
    checks("healthz", &[("ping", Ok(())), ("etcd", etcd)], verbose(&q))
}

pub async fn livez(RawQuery(q): RawQuery) -> Response {
    checks("livez", &[("ping", Ok(()))], verbose(&q))
}

pub async fn readyz(State(api): State<HttpApi>, RawQuery(q): RawQuery) -> Response {
    let etcd = store_check(&api).await;
    let shutdown = if api.shutdown().is_cancelled() {
        Err("the server is shutting down".to_string())
    } else {
        Ok(())
    };
    checks(
        "readyz",
        &[("ping", Ok(())), ("etcd", etcd), ("shutdown", shutdown)],
        verbose(&q),
    )
}

pub async fn metrics(State(api): State<HttpApi>) -> Response {
    respond::bytes(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        api.metrics().encode(),
    )
}

pub async fn openapi_root() -> Response {
    respond::bytes(
        StatusCode::OK,
        media::JSON,
        openapi::documents().root.clone(),
    )
}

pub async fn openapi_document(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    match openapi::documents().by_path.get(path.trim_end_matches('/')) {
        Some(doc) => respond::bytes(StatusCode::OK, media::JSON, doc.clone()),
        None => respond::not_found().await,
    }
}
