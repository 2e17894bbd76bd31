//! OpenAPI v3: the `/openapi/v3` root and one document per group version, with the schema of every
//! served kind (from `k8s-openapi`'s generated JSON schemas: descriptions, types, formats, list and
//! map types), the paths and operations of every resource, and `x-kubernetes-group-version-kind` —
//! what kubectl needs for `--validate=strict`, `kubectl explain` and client-side apply.
//!
//! The same schemas drive server-side field validation ([`super::validate`]) and the protobuf
//! decoder ([`super::protobuf`]), so all three agree on what a kind's fields are.
//!
//! Patch operations advertise JSON patch, merge patch and apply, but not strategic merge patch:
//! k8s-openapi's schemas carry no `x-kubernetes-patch-merge-key`, and kubectl then computes
//! client-side-apply patches from the Go types it has compiled in, which do (kubectl-wire.md §6).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use bytes::Bytes;
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use niwa_api::{Registry, ResourceInfo};
use serde_json::{Map, Value, json};

use super::kinds::for_each_kind;
use super::version::GIT_VERSION;

/// Every schema, by its Kubernetes name (`io.k8s.api.core.v1.Pod`), `$ref`s pointing at
/// `#/components/schemas/…`.
pub struct Schemas {
    pub components: Map<String, Value>,
    /// (group, version, kind) → schema name.
    kinds: BTreeMap<(String, String, String), String>,
}

fn generate() -> Schemas {
    let mut generator: SchemaGenerator = SchemaSettings::openapi3()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    let mut kinds = BTreeMap::new();
    // The `k8s-openapi` type of each kind niwa may serve, and of the subresource bodies: every
    // entry of the shared list, whether or not it is also decodable from protobuf.
    macro_rules! schema_of_each {
        ($( $flag:ident $group:literal $version:literal $kind:literal => $($path:ident)::+ ),* $(,)?) => {
            $(
                let _ = generator.subschema_for::<k8s_openapi::$($path)::+>();
                kinds.insert(
                    ($group.to_string(), $version.to_string(), $kind.to_string()),
                    <k8s_openapi::$($path)::+ as JsonSchema>::schema_name().into_owned(),
                );
            )*
        };
    }
    for_each_kind!(schema_of_each);
    let mut components = generator.take_definitions(true);
    for ((group, version, kind), name) in &kinds {
        if let Some(Value::Object(schema)) = components.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "version": version, "kind": kind}]),
            );
        }
    }
    Schemas { components, kinds }
}

/// The schemas, generated once.
pub fn schemas() -> &'static Schemas {
    static SCHEMAS: LazyLock<Schemas> = LazyLock::new(generate);
    &SCHEMAS
}

impl Schemas {
    /// The schema name of a kind, when niwa has its schema.
    pub fn kind_schema(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// `schema` with `$ref`s (direct, or the single `allOf` OpenAPI 3.0 uses to give a reference
    /// a description) followed to the referenced schema.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut cur = schema;
        for _ in 0..8 {
            let target = cur
                .get("$ref")
                .or_else(|| cur.get("allOf").and_then(|a| a.get(0)?.get("$ref")))
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(|name| self.components.get(name));
            match target {
                Some(t) => cur = t,
                None => break,
            }
        }
        cur
    }

    /// Names of every schema reachable from `roots`.
    fn closure(&self, roots: &[String]) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.to_vec();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = self.components.get(&name) {
                collect_refs(schema, &mut todo);
            }
        }
        seen
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(r.to_string());
            }
            m.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}

/// The served documents: the root and one per group version, encoded once.
pub struct Documents {
    pub root: Bytes,
    /// `api/v1`, `apis/apps/v1` → document.
    pub by_path: BTreeMap<String, Bytes>,
}

/// The documents, built once.
pub fn documents() -> &'static Documents {
    static DOCS: LazyLock<Documents> = LazyLock::new(build_documents);
    &DOCS
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn build_documents() -> Documents {
    let schemas = schemas();
    let mut by_path = BTreeMap::new();
    let mut root = Map::new();
    for (group, version) in Registry.group_versions() {
        let resources: Vec<&ResourceInfo> = Registry
            .all()
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .collect();
        let doc = group_version_document(schemas, group, version, &resources);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let path = gv_path(group, version);
        root.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={:016X}", hasher.finish())}),
        );
        by_path.insert(path, Bytes::from(bytes));
    }
    let root = json!({"paths": root});
    Documents {
        root: Bytes::from(serde_json::to_vec(&root).unwrap_or_default()),
        by_path,
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
            "string",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
            "string",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels.",
            "string",
        ),
        query(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields.",
            "string",
        ),
        query(
            "limit",
            "limit is a maximum number of responses to return for a list call.",
            "integer",
        ),
        query(
            "continue",
            "The continue option should be set when retrieving more results from the server.",
            "string",
        ),
        query(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
            "string",
        ),
        query(
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
            "boolean",
        ),
        query(
            "allowWatchBookmarks",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
            "boolean",
        ),
        query(
            "timeoutSeconds",
            "Timeout for the list/watch call.",
            "integer",
        ),
    ]
}

fn json_body(name: &str) -> Value {
    json!({"content": {"application/json": {"schema": schema_ref(name)}, "application/yaml": {"schema": schema_ref(name)}}})
}

fn ok(name: &str) -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(name)}, "application/yaml": {"schema": schema_ref(name)}}}})
}

#[allow(clippy::too_many_arguments)]
fn operation(
    action: &str,
    op_id: String,
    gvk: &Value,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
) -> Value {
    let mut op = json!({
        "operationId": op_id,
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn group_version_document(
    schemas: &Schemas,
    group: &str,
    version: &str,
    resources: &[&ResourceInfo],
) -> Value {
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    let mut roots = Vec::new();
    let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status".to_string();
    roots.push(status.clone());
    for info in resources {
        let Some(name) = schemas.kind_schema(group, version, info.kind) else {
            continue;
        };
        roots.push(name.to_string());
        let gvk = json!({"group": group, "version": version, "kind": info.kind});
        let tag = format!("{}{}", info.kind, info.plural);
        let (collection, item) = if info.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", info.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", info.plural),
            )
        } else {
            (
                format!("{base}/{}", info.plural),
                format!("{base}/{}/{{name}}", info.plural),
            )
        };
        let patch_body = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }});
        paths.insert(
            collection,
            json!({
                "get": operation("list", format!("list{tag}"), &gvk, list_params(), None, json!({"200": {"description": "OK"}})),
                "post": operation("post", format!("create{tag}"), &gvk, write_params(), Some(json_body(name)), ok(name)),
                "delete": operation("deletecollection", format!("deletecollection{tag}"), &gvk, list_params(), None, ok(&status)),
            }),
        );
        let mut patch_params = write_params();
        patch_params.push(query(
            "force",
            "Force is going to \"force\" Apply requests.",
            "boolean",
        ));
        paths.insert(
            item.clone(),
            json!({
                "get": operation("get", format!("read{tag}"), &gvk, vec![], None, ok(name)),
                "put": operation("put", format!("replace{tag}"), &gvk, write_params(), Some(json_body(name)), ok(name)),
                "patch": operation("patch", format!("patch{tag}"), &gvk, patch_params.clone(), Some(patch_body.clone()), ok(name)),
                "delete": operation("delete", format!("delete{tag}"), &gvk, write_params(), None, ok(name)),
            }),
        );
        if info.namespaced {
            paths.insert(
                format!("{base}/{}", info.plural),
                json!({"get": operation("list", format!("list{tag}ForAllNamespaces"), &gvk, list_params(), None, json!({"200": {"description": "OK"}}))}),
            );
        }
        for sub in info.subresources {
            let (sub_gvk, sub_schema) = match *sub {
                "status" => (gvk.clone(), name.to_string()),
                "scale" => match schemas.kind_schema("autoscaling", "v1", "Scale") {
                    Some(s) => (
                        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                        s.to_string(),
                    ),
                    None => continue,
                },
                _ => continue,
            };
            roots.push(sub_schema.clone());
            paths.insert(
                format!("{item}/{sub}"),
                json!({
                    "get": operation("get", format!("read{tag}{sub}"), &sub_gvk, vec![], None, ok(&sub_schema)),
                    "put": operation("put", format!("replace{tag}{sub}"), &sub_gvk, write_params(), Some(json_body(&sub_schema)), ok(&sub_schema)),
                    "patch": operation("patch", format!("patch{tag}{sub}"), &sub_gvk, patch_params.clone(), Some(patch_body.clone()), ok(&sub_schema)),
                }),
            );
        }
    }
    let included = schemas.closure(&roots);
    let components: Map<String, Value> = schemas
        .components
        .iter()
        .filter(|(k, _)| included.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": components},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_schema_with_its_gvk() {
        let s = schemas();
        for info in Registry.all() {
            let name = s.kind_schema(info.group, info.version, info.kind);
            let Some(name) = name else {
                panic!("no schema for {}", info.kind);
            };
            let schema = &s.components[name];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"][0]["kind"],
                info.kind
            );
            assert!(schema["properties"]["metadata"].is_object(), "{name}");
        }
    }

    #[test]
    fn documents_are_listed_in_the_root_and_carry_patch_operations() {
        let docs = documents();
        let root: Value = serde_json::from_slice(&docs.root).unwrap_or_default();
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/api/v1?hash="))
        );
        let apps: Value = serde_json::from_slice(&docs.by_path["apis/apps/v1"]).unwrap_or_default();
        let op = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation"))
        );
        assert!(apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"].is_object());
    }
}
