//! The writing verbs: create (POST, and the `binding`/`eviction` subresources), update (PUT),
//! patch (the four patch types; `scale` patched as an `autoscaling/v1` Scale), delete and
//! deletecollection — body decoding, `fieldValidation`, `dryRun`, then the registry.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use niwa_api::{ApiError, Reason};
use serde_json::{Value, json};

use super::decode::{self, Decoded};
use super::media::{self, BodyFormat};
use super::resource::{self, Ctx, method_not_allowed};
use super::{respond, validate};
use crate::object;
use crate::rest::{self, DeleteOptions, UpdateScope, WriteOptions};

/// Kubernetes' default request body limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            Reason::RequestEntityTooLarge,
            "the server has received a request that is too large: request entity too large",
        )
    })
}

fn content_type(ctx: &Ctx) -> &str {
    ctx.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Reads and decodes an object body, and applies `fieldValidation` to it.
async fn object_body(ctx: &Ctx, body: Body) -> Result<(Decoded, Vec<String>), ApiError> {
    let bytes = read_body(body).await?;
    let format = media::body_format(content_type(ctx)).ok_or_else(|| {
        ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}, {}, {}",
                media::JSON,
                media::YAML,
                media::PROTOBUF
            ),
        )
    })?;
    let decoded = decode::decode(format, &bytes)?;
    let warnings = validate::check(
        ctx.info,
        &decoded.value,
        &decoded.duplicates,
        ctx.params.validation()?,
    )?;
    Ok((decoded, warnings))
}

/// The write options of a request: `dryRun`, `force`, and the field manager — the
/// `fieldManager` parameter, or (except for apply, which requires one) the client's User-Agent up
/// to its first `/`, as Kubernetes derives it.
fn write_options(ctx: &Ctx, apply: bool) -> WriteOptions {
    let mut manager = ctx.params.field_manager.clone();
    if manager.is_empty() && !apply {
        let agent = ctx
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        manager = agent
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .take(128)
            .collect();
    }
    WriteOptions {
        dry_run: ctx.params.dry_run,
        field_manager: manager,
        force: ctx.params.force,
    }
}

fn scope(sub: &str) -> Result<UpdateScope, ApiError> {
    match sub {
        "" => Ok(UpdateScope::Main),
        "finalize" => Ok(UpdateScope::Finalize),
        "status" => Ok(UpdateScope::Status),
        _ => Err(method_not_allowed(&Method::PUT)),
    }
}

pub async fn create(ctx: &Ctx, body: Body) -> Result<Response, ApiError> {
    let rest = ctx.api.rest();
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    if ctx.info.namespaced && ns.is_empty() {
        return Err(method_not_allowed(&Method::POST));
    }
    match (name.is_empty(), ctx.path.subresource.as_str()) {
        (true, "") => {
            let (decoded, warnings) = object_body(ctx, body).await?;
            let created = rest
                .create_with(ctx.info, ns, decoded.value, &write_options(ctx, false))
                .await?;
            let resp = resource::object(ctx, StatusCode::CREATED, &created);
            Ok(respond::with_warnings(resp, &warnings))
        }
        (false, "binding") => {
            let bytes = read_body(body).await?;
            let format = media::body_format(content_type(ctx)).unwrap_or(BodyFormat::Json);
            let binding = decode::decode(format, &bytes)?.value;
            let status = rest.bind(ctx.info, ns, name, &binding).await?;
            Ok(respond::value(StatusCode::CREATED, ctx.output, &status))
        }
        (false, "eviction") => {
            let bytes = read_body(body).await?;
            let format = media::body_format(content_type(ctx)).unwrap_or(BodyFormat::Json);
            let eviction = decode::decode(format, &bytes)?.value;
            let opts = delete_options(ctx, &eviction["deleteOptions"])?;
            rest.delete(ctx.info, ns, name, opts).await?;
            Ok(respond::value(
                StatusCode::CREATED,
                ctx.output,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "code": 201}),
            ))
        }
        _ => Err(method_not_allowed(&Method::POST)),
    }
}

pub async fn update(ctx: &Ctx, body: Body) -> Result<Response, ApiError> {
    let rest = ctx.api.rest();
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    if ctx.path.subresource == "scale" {
        let bytes = read_body(body).await?;
        let format = media::body_format(content_type(ctx)).unwrap_or(BodyFormat::Json);
        let scale = decode::decode(format, &bytes)?.value;
        let updated = rest.update_scale(ctx.info, ns, name, &scale).await?;
        return Ok(respond::value(StatusCode::OK, ctx.output, &updated));
    }
    let scope = scope(&ctx.path.subresource)?;
    let (decoded, warnings) = object_body(ctx, body).await?;
    let updated = rest
        .update_with(
            ctx.info,
            ns,
            name,
            decoded.value,
            scope,
            &write_options(ctx, false),
        )
        .await?;
    let resp = resource::object(ctx, StatusCode::OK, &updated);
    Ok(respond::with_warnings(resp, &warnings))
}

pub async fn patch(ctx: &Ctx, body: Body) -> Result<Response, ApiError> {
    let rest = ctx.api.rest();
    let (ns, name) = (&ctx.path.namespace, &ctx.path.name);
    let patch_type = media::patch_type(content_type(ctx)).ok_or_else(|| {
        ApiError::new(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}, {}, {}, {}",
                media::JSON_PATCH,
                media::MERGE_PATCH,
                media::APPLY_PATCH,
                media::STRATEGIC_MERGE_PATCH
            ),
        )
    })?;
    let bytes = read_body(body).await?;
    // Apply bodies are YAML (JSON is YAML too); everything else is JSON.
    let decoded = if patch_type == media::APPLY_PATCH {
        decode::decode(BodyFormat::Yaml, &bytes)?
    } else {
        decode::decode_json(&bytes)?
    };
    let warnings = if patch_type == media::JSON_PATCH {
        Vec::new()
    } else {
        validate::check(
            ctx.info,
            &decoded.value,
            &decoded.duplicates,
            ctx.params.validation()?,
        )?
    };
    if ctx.path.subresource == "scale" {
        let mut scale = rest.get_scale(ctx.info, ns, name).await?;
        if patch_type == media::JSON_PATCH {
            rest::json_patch(&mut scale, &decoded.value)?;
        } else {
            rest::merge_patch(&mut scale, &decoded.value);
        }
        let updated = rest.update_scale(ctx.info, ns, name, &scale).await?;
        return Ok(respond::value(StatusCode::OK, ctx.output, &updated));
    }
    let scope = scope(&ctx.path.subresource)?;
    let body = serde_json::to_vec(&decoded.value).unwrap_or_default();
    let apply = patch_type == media::APPLY_PATCH;
    // An apply creates a missing object, and then answers 201 as Kubernetes does.
    let existed = !apply || rest.get(ctx.info, ns, name).await.is_ok();
    let opts = write_options(ctx, apply);
    let patched = rest
        .patch_with(ctx.info, ns, name, patch_type, &body, scope, &opts)
        .await?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let resp = resource::object(ctx, code, &patched);
    Ok(respond::with_warnings(resp, &warnings))
}

/// DeleteOptions from a body (JSON) and the query, the query winning as in Kubernetes.
fn delete_options(ctx: &Ctx, body: &Value) -> Result<DeleteOptions, ApiError> {
    let mut opts: DeleteOptions = if body.is_object() {
        serde_json::from_value(body.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    } else {
        DeleteOptions::default()
    };
    let p = &ctx.params;
    if let Some(g) = p.grace_period_seconds {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(policy) = &p.propagation_policy {
        opts.propagation_policy = Some(policy.clone());
    }
    let orphan = p
        .orphan_dependents
        .or_else(|| body["orphanDependents"].as_bool());
    if opts.propagation_policy.is_none()
        && let Some(orphan) = orphan
    {
        opts.propagation_policy = Some(if orphan { "Orphan" } else { "Background" }.into());
    }
    if p.dry_run && !opts.dry_run.iter().any(|d| d == "All") {
        opts.dry_run.push("All".into());
    }
    Ok(opts)
}

async fn delete_body(ctx: &Ctx, body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let format = media::body_format(content_type(ctx)).unwrap_or(BodyFormat::Json);
    Ok(decode::decode(format, &bytes)?.value)
}

/// Kinds whose DELETE answers with the deleted object rather than a `Status`.
fn returns_deleted_object(kind: &str) -> bool {
    matches!(kind, "Pod" | "Service" | "Namespace")
}

pub async fn delete(ctx: &Ctx, body: Body) -> Result<Response, ApiError> {
    let body = delete_body(ctx, body).await?;
    let opts = delete_options(ctx, &body)?;
    let dry_run = opts.dry_run.iter().any(|d| d == "All");
    let obj = ctx
        .api
        .rest()
        .delete(ctx.info, &ctx.path.namespace, &ctx.path.name, opts)
        .await?;
    // Still there (graceful deletion, finalizers) or a dry run: the object as it is now.
    if dry_run || object::is_deleting(&obj) || returns_deleted_object(ctx.info.kind) {
        return Ok(resource::object(ctx, StatusCode::OK, &obj));
    }
    let mut details =
        json!({"name": ctx.path.name, "kind": ctx.info.plural, "uid": object::uid(&obj)});
    if !ctx.info.group.is_empty() {
        details["group"] = json!(ctx.info.group);
    }
    Ok(respond::value(
        StatusCode::OK,
        ctx.output,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}),
    ))
}

/// Deletes every object the selectors match; answers with the list of what was deleted.
pub async fn delete_collection(ctx: &Ctx, body: Body) -> Result<Response, ApiError> {
    let body = delete_body(ctx, body).await?;
    let opts = delete_options(ctx, &body)?;
    let rest = ctx.api.rest();
    let mut list_opts = resource::list_options(&ctx.params);
    list_opts.limit = 0;
    list_opts.continue_token.clear();
    let list = rest.list(ctx.info, &ctx.path.namespace, &list_opts).await?;
    let mut deleted = Vec::new();
    for item in list.values() {
        let ns = object::namespace(&item).to_string();
        match rest
            .delete(ctx.info, &ns, object::name(&item), opts.clone())
            .await
        {
            Ok(obj) => deleted.push(obj),
            // Gone meanwhile: that is what was asked for.
            Err(e) if e.reason == Reason::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let out = json!({
        "kind": list.kind, "apiVersion": list.api_version,
        "metadata": {"resourceVersion": list.resource_version.to_string()},
        "items": deleted,
    });
    Ok(respond::value(StatusCode::OK, ctx.output, &out))
}
