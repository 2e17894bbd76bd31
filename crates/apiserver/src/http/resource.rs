//! The dispatcher of `/api` and `/apis`: discovery, then every verb on every resource of the
//! registry — reads here (get, list, watch, subresources), writes in [`super::write`] — with
//! request metrics, and the rendering of objects and lists in the negotiated format.
//!
//! Lists are streamed: the watch cache hands out its encoded objects (shared, not copied), and the
//! response is written in bounded chunks from them, so a 100k-object list never exists as a second
//! whole copy in memory — neither as JSON nor as a Table, whose rows are computed one at a time.

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use niwa_api::{ApiError, Reason, ResourceInfo};
use serde_json::{Value, json};

use super::media::{self, Output};
use super::metrics::{RequestLabels, VerbLabels};
use super::params::Params;
use super::path::{self, ResourcePath, Route};
use super::table::{self, Include};
use super::{HttpApi, attach, discovery, exec, logs, portforward, respond, watch, write};
use crate::rest::{self, ListOptions, ObjectList};

/// Bytes per chunk of a streamed list.
const LIST_CHUNK: usize = 64 * 1024;

/// Everything a verb handler needs about its request.
pub struct Ctx {
    pub api: HttpApi,
    pub info: &'static ResourceInfo,
    pub path: ResourcePath,
    pub params: Params,
    pub output: Output,
    pub headers: HeaderMap,
}

impl Ctx {
    pub fn include(&self) -> Include {
        Include::parse(&self.params.include_object)
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Entry point of every `/api…` and `/apis…` request.
pub async fn dispatch(State(api): State<HttpApi>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = path::parse(req.uri().path());
    let (verb, labels) = labels_of(&method, &route, req.uri().query());
    let long_running = matches!(verb.as_str(), "WATCH" | "CONNECT");
    let resp = match route {
        Route::Resource(p) => resource(api.clone(), p, req).await,
        other => discovery_response(&other, req.headers()),
    };
    let code = resp.status().as_u16().to_string();
    api.metrics()
        .requests
        .get_or_create(&RequestLabels {
            code,
            ..labels.clone()
        })
        .inc();
    if !long_running {
        api.metrics()
            .duration
            .get_or_create(&VerbLabels {
                verb,
                resource: labels.resource,
            })
            .observe(started.elapsed().as_secs_f64());
    }
    resp
}

/// Kubernetes' metric verb (`GET`/`LIST`/`WATCH`/`POST`/…) and labels of a request.
fn labels_of(method: &Method, route: &Route, query: Option<&str>) -> (String, RequestLabels) {
    let mut labels = RequestLabels {
        verb: String::new(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        code: String::new(),
    };
    let watching = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match route {
        Route::Resource(p) => {
            labels.group = p.group.clone();
            labels.version = p.version.clone();
            labels.resource = p.resource.clone();
            labels.subresource = p.subresource.clone();
            match *method {
                Method::GET if p.subresource == "log" => "CONNECT",
                _ if matches!(p.subresource.as_str(), "exec" | "attach" | "portforward") => {
                    "CONNECT"
                }
                Method::GET if watching || p.legacy_watch => "WATCH",
                Method::GET if p.name.is_empty() => "LIST",
                Method::DELETE if p.name.is_empty() => "DELETECOLLECTION",
                _ => method.as_str(),
            }
        }
        _ => method.as_str(),
    };
    labels.verb = verb.to_string();
    (verb.to_string(), labels)
}

fn discovery_response(route: &Route, headers: &HeaderMap) -> Response {
    let output = media::negotiate(header_str(headers, header::ACCEPT));
    let aggregated = |core: bool| match output {
        Output::Discovery(v) => {
            let ct = if v == "v2" {
                media::DISCOVERY_V2
            } else {
                media::DISCOVERY_V2BETA1
            };
            Some(respond::bytes(
                StatusCode::OK,
                ct,
                serde_json::to_vec(&discovery::aggregated(core, v)).unwrap_or_default(),
            ))
        }
        _ => None,
    };
    let found = |v: Option<Value>| match v {
        Some(v) => respond::value(StatusCode::OK, Output::Json, &v),
        None => respond::error(&ApiError::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )),
    };
    match route {
        Route::CoreVersions => aggregated(true).unwrap_or_else(|| {
            let host = header_str(headers, header::HOST);
            found(Some(discovery::core_versions(host)))
        }),
        Route::Groups => aggregated(false).unwrap_or_else(|| found(Some(discovery::groups()))),
        Route::Group(g) => found(discovery::group(g)),
        Route::GroupVersion { group, version } => found(discovery::resource_list(group, version)),
        _ => found(None),
    }
}

async fn resource(api: HttpApi, p: ResourcePath, req: Request) -> Response {
    let result = async {
        let info = rest::resolve(&p.group, &p.version, &p.resource)?;
        if !info.namespaced && !p.namespace.is_empty() {
            return Err(ApiError::new(
                Reason::NotFound,
                "the server could not find the requested resource",
            ));
        }
        if !p.subresource.is_empty() && !info.has_subresource(&p.subresource) {
            return Err(ApiError::new(
                Reason::NotFound,
                "the server could not find the requested resource",
            ));
        }
        let params = Params::parse(req.uri().query())?;
        let output = media::negotiate(header_str(req.headers(), header::ACCEPT));
        let ctx = Ctx {
            api,
            info,
            path: p,
            params,
            output,
            headers: req.headers().clone(),
        };
        let method = req.method().clone();
        let named = !ctx.path.name.is_empty();
        match method {
            Method::GET if ctx.path.subresource == "log" => logs::logs(&ctx).await,
            Method::GET | Method::POST if ctx.path.subresource == "exec" => {
                exec::exec(&ctx, req).await
            }
            Method::GET | Method::POST if ctx.path.subresource == "attach" => {
                attach::attach(&ctx, req).await
            }
            Method::GET | Method::POST if ctx.path.subresource == "portforward" => {
                portforward::portforward(&ctx, req).await
            }
            Method::GET if ctx.params.watch || ctx.path.legacy_watch => watch::watch(&ctx).await,
            Method::GET if named => get(&ctx).await,
            Method::GET => list(&ctx).await,
            Method::POST => write::create(&ctx, req.into_body()).await,
            Method::PUT if named => write::update(&ctx, req.into_body()).await,
            Method::PATCH if named => write::patch(&ctx, req.into_body()).await,
            Method::DELETE if named => write::delete(&ctx, req.into_body()).await,
            Method::DELETE => write::delete_collection(&ctx, req.into_body()).await,
            _ => Err(method_not_allowed(&method)),
        }
    }
    .await;
    result.unwrap_or_else(|e| respond::error(&e))
}

pub fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

async fn get(ctx: &Ctx) -> Result<Response, ApiError> {
    let rest = ctx.api.rest();
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    match ctx.path.subresource.as_str() {
        "" | "status" => {
            let obj = rest.get(ctx.info, ns, name).await?;
            Ok(object(ctx, StatusCode::OK, &obj))
        }
        "scale" => {
            let scale = rest.get_scale(ctx.info, ns, name).await?;
            Ok(respond::value(StatusCode::OK, ctx.output, &scale))
        }
        _ => Err(method_not_allowed(&Method::GET)),
    }
}

/// One object (of `ctx.info`'s kind) in the negotiated format.
pub fn object(ctx: &Ctx, status: StatusCode, obj: &Value) -> Response {
    match ctx.output {
        Output::Table(v) => {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            let now = jiff::Timestamp::now();
            let t = table::table(
                ctx.info,
                std::slice::from_ref(obj),
                ctx.include(),
                v,
                rv,
                now,
            );
            respond::value(status, Output::Json, &t)
        }
        Output::PartialMetadata(v) => {
            respond::value(status, Output::Json, &table::partial_metadata(obj, v))
        }
        other => respond::value(status, other, obj),
    }
}

pub fn list_options(p: &Params) -> ListOptions {
    ListOptions {
        label_selector: p.label_selector.clone(),
        field_selector: p.field_selector.clone(),
        limit: p.limit,
        continue_token: p.continue_token.clone(),
        resource_version: p.resource_version.clone(),
        resource_version_match: p.resource_version_match.clone(),
    }
}

async fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let list = ctx
        .api
        .rest()
        .list(ctx.info, &ctx.path.namespace, &list_options(&ctx.params))
        .await?;
    Ok(list_response(ctx, list))
}

fn list_metadata(list: &ObjectList) -> Value {
    let mut md = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        md["continue"] = json!(c);
    }
    if let Some(n) = list.remaining_item_count {
        md["remainingItemCount"] = json!(n);
    }
    md
}

/// A list in the negotiated format, streamed.
pub fn list_response(ctx: &Ctx, list: ObjectList) -> Response {
    let md = list_metadata(&list);
    match ctx.output {
        Output::Table(v) => {
            let head = table::head(
                ctx.info,
                v,
                &list.resource_version.to_string(),
                list.continue_token.as_deref(),
                list.remaining_item_count,
            );
            let info = ctx.info;
            let include = ctx.include();
            let now = jiff::Timestamp::now();
            stream_array(head, "rows", list.items, move |item| {
                let obj: Value = serde_json::from_slice(item).unwrap_or(Value::Null);
                let row = table::row(info, &obj, include, v, now);
                Bytes::from(serde_json::to_vec(&row).unwrap_or_default())
            })
        }
        Output::PartialMetadata(v) => {
            let head = json!({"kind": "PartialObjectMetadataList",
                "apiVersion": format!("meta.k8s.io/{v}"), "metadata": md});
            stream_array(head, "items", list.items, move |item| {
                let obj: Value = serde_json::from_slice(item).unwrap_or(Value::Null);
                Bytes::from(
                    serde_json::to_vec(&table::partial_metadata(&obj, v)).unwrap_or_default(),
                )
            })
        }
        Output::Yaml => respond::value(StatusCode::OK, Output::Yaml, &list.to_value()),
        _ => {
            let head = json!({"kind": list.kind, "apiVersion": list.api_version, "metadata": md});
            stream_array(head, "items", list.items, Bytes::clone)
        }
    }
}

/// Streams `head` with an array field `field` whose elements are `render(item)`, in chunks of
/// about [`LIST_CHUNK`] bytes.
fn stream_array(
    head: Value,
    field: &str,
    items: Vec<Bytes>,
    render: impl Fn(&Bytes) -> Bytes + Send + 'static,
) -> Response {
    let mut first = serde_json::to_vec(&head).unwrap_or_else(|_| b"{}".to_vec());
    first.pop(); // the closing brace; the array follows
    if first.len() > 1 {
        first.push(b',');
    }
    first.extend_from_slice(format!("\"{field}\":[").as_bytes());
    let state = (
        Some(BytesMut::from(&first[..])),
        items.into_iter().enumerate(),
        false,
    );
    let stream = futures::stream::unfold(state, move |(pending, mut iter, done)| {
        let render = &render;
        let out = (|| {
            if done {
                return None;
            }
            let mut buf = pending.unwrap_or_default();
            for (i, item) in iter.by_ref() {
                if i > 0 {
                    buf.extend_from_slice(b",");
                }
                buf.extend_from_slice(&render(&item));
                if buf.len() >= LIST_CHUNK {
                    return Some((buf.freeze(), (None, iter, false)));
                }
            }
            buf.extend_from_slice(b"]}");
            Some((buf.freeze(), (None, iter, true)))
        })();
        async move { out.map(|(chunk, state)| (Ok::<Bytes, Infallible>(chunk), state)) }
    });
    respond::bytes(StatusCode::OK, media::JSON, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_arrays_are_valid_json() {
        let items: Vec<Bytes> = (0..5000)
            .map(|i| Bytes::from(format!("{{\"n\":{i}}}")))
            .collect();
        let resp = stream_array(
            json!({"kind": "X", "metadata": {}}),
            "items",
            items,
            Bytes::clone,
        );
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["kind"], "X");
        assert_eq!(v["items"].as_array().map(Vec::len), Some(5000));
        assert_eq!(v["items"][4999]["n"], 4999);
        let resp = stream_array(json!({}), "rows", Vec::new(), Bytes::clone);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        assert_eq!(&body[..], b"{\"rows\":[]}");
    }
}
