//! Watch streams over HTTP (`?watch=true`, and the deprecated `/watch/` paths): one JSON
//! `{"type": …, "object": …}` per line, chunked, objects as Tables or partial metadata when the
//! client asked for them, ended after `timeoutSeconds` (Kubernetes' default: a random 30–60 min) or
//! at shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use niwa_api::ApiError;
use prometheus_client::metrics::gauge::Gauge;
use rand::Rng;
use serde_json::{Value, json};

use super::media::{self, Output};
use super::metrics::VerbLabels;
use super::resource::Ctx;
use super::{respond, table};
use crate::rest::{WatchEvent, WatchOptions};

/// Kubernetes' `--min-request-timeout`: watches without timeoutSeconds end after a random time
/// between this and twice this.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// Decrements the open-watches gauge when the stream is dropped.
struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn watch(ctx: &Ctx) -> Result<Response, ApiError> {
    let mut field_selector = ctx.params.field_selector.clone();
    if !ctx.path.name.is_empty() {
        // `/watch/namespaces/ns/pods/name` watches one object.
        let by_name = format!("metadata.name={}", ctx.path.name);
        field_selector = if field_selector.is_empty() {
            by_name
        } else {
            format!("{field_selector},{by_name}")
        };
    }
    let opts = WatchOptions {
        label_selector: ctx.params.label_selector.clone(),
        field_selector,
        resource_version: ctx.params.resource_version.clone(),
        allow_bookmarks: ctx.params.allow_watch_bookmarks,
    };
    let shutdown = ctx.api.shutdown().clone();
    let events = ctx
        .api
        .rest()
        .watch(ctx.info, &ctx.path.namespace, opts, shutdown)
        .await?;
    let timeout = match ctx.params.timeout_seconds {
        Some(s) => Duration::from_secs(s),
        None => {
            let base = MIN_REQUEST_TIMEOUT.as_secs();
            Duration::from_secs(rand::rng().random_range(base..2 * base))
        }
    };
    let gauge = ctx
        .api
        .metrics()
        .longrunning
        .get_or_create(&VerbLabels {
            verb: "WATCH".into(),
            resource: ctx.info.plural.into(),
        })
        .clone();
    gauge.inc();
    let open = Open(gauge);
    let info = ctx.info;
    let include = ctx.include();
    let output = ctx.output;
    let mut first = true;
    let stream = events
        .take_until(tokio::time::sleep(timeout))
        .map(move |ev| {
            let _keep = &open;
            let object = render(info, include, output, &ev, first);
            first = false;
            let mut line = Vec::with_capacity(object.len() + 32);
            line.extend_from_slice(b"{\"type\":\"");
            line.extend_from_slice(ev.kind.as_bytes());
            line.extend_from_slice(b"\",\"object\":");
            line.extend_from_slice(&object);
            line.extend_from_slice(b"}\n");
            Ok::<Bytes, Infallible>(Bytes::from(line))
        });
    Ok(respond::bytes(
        StatusCode::OK,
        media::JSON,
        Body::from_stream(stream),
    ))
}

/// The event's object as the client wants it.
fn render(
    info: &'static niwa_api::ResourceInfo,
    include: table::Include,
    output: Output,
    ev: &WatchEvent,
    first: bool,
) -> Bytes {
    if ev.kind == "ERROR" {
        return ev.object.clone();
    }
    match output {
        Output::Table(v) => {
            let obj: Value = serde_json::from_slice(&ev.object).unwrap_or(Value::Null);
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            let mut t = table::head(info, v, rv, None, None);
            if !first {
                t["columnDefinitions"] = json!([]);
            }
            t["rows"] = if ev.kind == "BOOKMARK" {
                json!([])
            } else {
                json!([table::row(info, &obj, include, v, jiff::Timestamp::now())])
            };
            Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
        }
        Output::PartialMetadata(v) => {
            let obj: Value = serde_json::from_slice(&ev.object).unwrap_or(Value::Null);
            Bytes::from(serde_json::to_vec(&table::partial_metadata(&obj, v)).unwrap_or_default())
        }
        _ => ev.object.clone(),
    }
}
