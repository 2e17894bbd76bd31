//! The Kubernetes protobuf request envelope (`application/vnd.kubernetes.protobuf`), which kubectl
//! ≥ 1.32 sends for `kubectl create namespace|deployment|configmap|secret|service …`.
//!
//! Wire form: the magic `k8s\0`, then a `runtime.Unknown { typeMeta{apiVersion, kind}, raw }`
//! whose `raw` is the kind's generated message (k8s.io/api `generated.proto`), decoded here with
//! the `k8s-pb` types.
//!
//! `k8s-pb` messages have no JSON form, but their derived `Debug` output is a complete, regular
//! rendering of every field (`Name { field: Some(value), list: [..], map: {"k": v} }`). This module
//! parses that rendering and maps it onto the kind's OpenAPI schema ([`super::openapi`]), which
//! gives the JSON field names (`cluster_ip` → `clusterIP`) and the special encodings: `Time` →
//! RFC 3339, `Quantity` and `IntOrString` → their scalar, bytes → base64, `RawExtension` → the
//! embedded JSON. Go's protobuf encoder writes every non-pointer field, empty or not, so empty
//! strings, lists and maps are dropped (they are `omitempty` in JSON).
//!
//! Here: the envelope and the kind table (generated from the list the OpenAPI schemas share,
//! [`super::kinds`]). The `Debug` text parser is in `debug`, its mapping onto the OpenAPI schema
//! in `json`, the golden tests (real kubectl bodies) in `tests`.

mod debug;
mod json;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use niwa_api::ApiError;
use prost::Message;
use serde_json::{Map, Value, json};

use super::kinds::for_each_kind;
use super::openapi::{Schemas, schemas};
use debug::Parser;
use json::to_json;

const MAGIC: &[u8] = b"k8s\0";

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to decode the protobuf body: {msg}"))
}

/// Decodes an enveloped protobuf body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let payload = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("the body does not start with the \"k8s\\x00\" prefix"))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(payload).map_err(bad)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let (group, version) = niwa_api::registry::split_api_version(&api_version);
    let text = debug_text(group, version, &kind, &raw)?;
    let parsed = Parser::new(&text).value().map_err(bad)?;
    let s = schemas();
    let schema_name = s
        .kind_schema(group, version, &kind)
        .ok_or_else(|| unsupported(&api_version, &kind))?;
    let schema = s
        .components
        .get(schema_name)
        .ok_or_else(|| unsupported(&api_version, &kind))?;
    let mut obj = to_json(s, &parsed, schema).unwrap_or_else(|| json!({}));
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn unsupported(api_version: &str, kind: &str) -> ApiError {
    ApiError::new(
        niwa_api::Reason::UnsupportedMediaType,
        format!(
            "the protobuf encoding of {kind} ({api_version}) is not supported; send application/json"
        ),
    )
}

/// Decodes `raw` as the `k8s-pb` message of the kind and renders it with `Debug`.
fn debug_text(group: &str, version: &str, kind: &str, raw: &[u8]) -> Result<String, ApiError> {
    // A kind listed with a schema only is refused like one not listed at all.
    macro_rules! decode_as {
        (protobuf, $ty:ty) => {
            <$ty>::decode(raw).map(|m| format!("{m:?}")).map_err(bad)
        };
        (openapi_only, $ty:ty) => {
            Err(unsupported(&format!("{group}/{version}"), kind))
        };
    }
    macro_rules! table {
        ($( $flag:ident $g:literal $v:literal $k:literal => $($path:ident)::+ ),* $(,)?) => {
            match (group, version, kind) {
                $( ($g, $v, $k) => decode_as!($flag, k8s_pb::$($path)::+), )*
                _ => Err(unsupported(&format!("{group}/{version}"), kind)),
            }
        };
    }
    for_each_kind!(table)
}
