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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use niwa_api::ApiError;
use prost::Message;
use serde_json::{Map, Value, json};

use super::openapi::{Schemas, schemas};

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
    use k8s_pb::api;
    macro_rules! table {
        ($( $g:literal $v:literal $k:literal => $ty:ty ),* $(,)?) => {
            match (group, version, kind) {
                $( ($g, $v, $k) => <$ty>::decode(raw).map(|m| format!("{m:?}")).map_err(bad), )*
                _ => Err(unsupported(&format!("{group}/{version}"), kind)),
            }
        };
    }
    table!(
        "" "v1" "Namespace" => api::core::v1::Namespace,
        "" "v1" "Node" => api::core::v1::Node,
        "" "v1" "Pod" => api::core::v1::Pod,
        "" "v1" "Service" => api::core::v1::Service,
        "" "v1" "Endpoints" => api::core::v1::Endpoints,
        "" "v1" "ConfigMap" => api::core::v1::ConfigMap,
        "" "v1" "Secret" => api::core::v1::Secret,
        "" "v1" "ServiceAccount" => api::core::v1::ServiceAccount,
        "" "v1" "Event" => api::core::v1::Event,
        "" "v1" "PersistentVolume" => api::core::v1::PersistentVolume,
        "" "v1" "PersistentVolumeClaim" => api::core::v1::PersistentVolumeClaim,
        "" "v1" "ResourceQuota" => api::core::v1::ResourceQuota,
        "" "v1" "LimitRange" => api::core::v1::LimitRange,
        "" "v1" "Binding" => api::core::v1::Binding,
        "apps" "v1" "Deployment" => api::apps::v1::Deployment,
        "apps" "v1" "ReplicaSet" => api::apps::v1::ReplicaSet,
        "apps" "v1" "DaemonSet" => api::apps::v1::DaemonSet,
        "apps" "v1" "StatefulSet" => api::apps::v1::StatefulSet,
        "apps" "v1" "ControllerRevision" => api::apps::v1::ControllerRevision,
        "batch" "v1" "Job" => api::batch::v1::Job,
        "batch" "v1" "CronJob" => api::batch::v1::CronJob,
        "discovery.k8s.io" "v1" "EndpointSlice" => api::discovery::v1::EndpointSlice,
        "networking.k8s.io" "v1" "Ingress" => api::networking::v1::Ingress,
        "networking.k8s.io" "v1" "IngressClass" => api::networking::v1::IngressClass,
        "storage.k8s.io" "v1" "StorageClass" => api::storage::v1::StorageClass,
        "coordination.k8s.io" "v1" "Lease" => api::coordination::v1::Lease,
        "events.k8s.io" "v1" "Event" => api::events::v1::Event,
        "policy" "v1" "PodDisruptionBudget" => api::policy::v1::PodDisruptionBudget,
        "policy" "v1" "Eviction" => api::policy::v1::Eviction,
        "autoscaling" "v1" "Scale" => api::autoscaling::v1::Scale,
        "autoscaling" "v2" "HorizontalPodAutoscaler" => api::autoscaling::v2::HorizontalPodAutoscaler,
    )
}

/// Non-pointer integer fields whose zero Go writes in protobuf but omits in JSON. Other zeros are
/// kept: a pointer field's zero (`replicas: 0`, `runAsUser: 0`) means something.
const OMITTED_ZEROS: &[&str] = &["generation", "minReadySeconds", "nodePort", "hostPort"];

/// A value of the `Debug` rendering.
#[derive(Debug, Clone, PartialEq)]
enum Dbg {
    None,
    Bool(bool),
    Num(String),
    Str(String),
    List(Vec<Dbg>),
    Map(Vec<(Dbg, Dbg)>),
    Struct(String, Vec<(String, Dbg)>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.pos))
        }
    }

    fn ident(&mut self) -> String {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric()
                || self.s[self.pos] == b'_'
                || self.s[self.pos] == b'#')
        {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn value(&mut self) -> Result<Dbg, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Dbg::Str),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(b']') {
                    items.push(self.value()?);
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
                Ok(Dbg::List(items))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                while self.peek() != Some(b'}') {
                    let k = self.value()?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    entries.push((k, v));
                    if self.peek() == Some(b',') {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
                Ok(Dbg::Map(entries))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len()
                    && matches!(
                        self.s[self.pos],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.pos += 1;
                }
                Ok(Dbg::Num(
                    String::from_utf8_lossy(&self.s[start..self.pos]).into_owned(),
                ))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let name = self.ident();
                match (name.as_str(), self.peek()) {
                    ("None", _) => Ok(Dbg::None),
                    ("true", _) => Ok(Dbg::Bool(true)),
                    ("false", _) => Ok(Dbg::Bool(false)),
                    (_, Some(b'(')) => {
                        self.pos += 1;
                        let inner = self.value()?;
                        self.expect(b')')?;
                        Ok(inner)
                    }
                    (_, Some(b'{')) => {
                        self.pos += 1;
                        let mut fields = Vec::new();
                        while self.peek() != Some(b'}') {
                            let field = self.ident();
                            if field.is_empty() {
                                return Err(format!("expected a field name at {}", self.pos));
                            }
                            self.expect(b':')?;
                            fields.push((field, self.value()?));
                            if self.peek() == Some(b',') {
                                self.pos += 1;
                            }
                        }
                        self.pos += 1;
                        Ok(Dbg::Struct(name, fields))
                    }
                    _ => Ok(Dbg::Struct(name, Vec::new())),
                }
            }
            other => Err(format!(
                "unexpected {:?} at {}",
                other.map(char::from),
                self.pos
            )),
        }
    }

    /// A Rust `Debug` string literal (`escape_debug` rules).
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err("unterminated string".into());
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err("unterminated escape".into());
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            self.expect(b'{')?;
                            let start = self.pos;
                            while self.s.get(self.pos).is_some_and(|c| *c != b'}') {
                                self.pos += 1;
                            }
                            let hex = String::from_utf8_lossy(&self.s[start..self.pos]);
                            self.pos += 1;
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or("bad unicode escape")?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

fn norm(name: &str) -> String {
    name.trim_start_matches("r#")
        .replace('_', "")
        .to_ascii_lowercase()
}

fn field<'a>(fields: &'a [(String, Dbg)], name: &str) -> Option<&'a Dbg> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn num(d: &Dbg) -> Option<Value> {
    match d {
        Dbg::Num(n) => n
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| n.parse::<f64>().ok().map(Value::from)),
        _ => None,
    }
}

/// Maps a parsed value onto `schema`; `None` means "omit".
fn to_json(s: &Schemas, d: &Dbg, schema: &Value) -> Option<Value> {
    let schema = s.resolve(schema);
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match d {
        Dbg::None => None,
        Dbg::Bool(b) => Some(json!(b)),
        Dbg::Num(_) => num(d),
        Dbg::Str(text) if text.is_empty() => None,
        Dbg::Str(text) => Some(json!(text)),
        Dbg::List(items) if format == "byte" => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|i| match i {
                    Dbg::Num(n) => n.parse().ok(),
                    _ => None,
                })
                .collect();
            Some(json!(B64.encode(bytes)))
        }
        Dbg::List(items) if items.is_empty() => None,
        Dbg::List(items) => {
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
            Some(Value::Array(
                items
                    .iter()
                    .map(|i| to_json(s, i, &item_schema).unwrap_or(Value::Null))
                    .collect(),
            ))
        }
        Dbg::Map(entries) if entries.is_empty() => None,
        Dbg::Map(entries) => {
            let value_schema = schema
                .get("additionalProperties")
                .cloned()
                .unwrap_or(Value::Null);
            let mut out = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Dbg::Str(k) => k.clone(),
                    Dbg::Num(n) => n.clone(),
                    _ => continue,
                };
                let value = match (v, &value_schema) {
                    // An empty string is a real map value ("key": "").
                    (Dbg::Str(text), _) => json!(text),
                    (v, vs) => to_json(s, v, vs).unwrap_or(Value::Null),
                };
                out.insert(key, value);
            }
            Some(Value::Object(out))
        }
        Dbg::Struct(name, fields) => {
            if format == "date-time" {
                let seconds = field(fields, "seconds").and_then(num)?.as_i64()?;
                let nanos = field(fields, "nanos")
                    .and_then(num)
                    .and_then(|n| n.as_i64())
                    .unwrap_or(0);
                if seconds == 0 && nanos == 0 {
                    return None;
                }
                let ts = jiff::Timestamp::new(seconds, nanos as i32).ok()?;
                let text = if nanos > 0 {
                    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
                } else {
                    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
                };
                return Some(json!(text));
            }
            if int_or_string {
                return match name.as_str() {
                    "Quantity" => field(fields, "string").and_then(|v| to_json(s, v, &Value::Null)),
                    _ => {
                        let ty = field(fields, "r#type").or_else(|| field(fields, "type"));
                        if ty.and_then(num).and_then(|t| t.as_i64()) == Some(1) {
                            field(fields, "str_val").and_then(|v| to_json(s, v, &Value::Null))
                        } else {
                            field(fields, "int_val").and_then(num)
                        }
                    }
                };
            }
            match name.as_str() {
                "RawExtension" => {
                    let Some(Dbg::List(bytes)) = field(fields, "raw") else {
                        return None;
                    };
                    let bytes: Vec<u8> = bytes
                        .iter()
                        .filter_map(|b| match b {
                            Dbg::Num(n) => n.parse().ok(),
                            _ => None,
                        })
                        .collect();
                    return serde_json::from_slice(&bytes).ok();
                }
                "Duration" if schema.get("properties").is_none() => {
                    return field(fields, "duration").and_then(|v| to_json(s, v, &Value::Null));
                }
                _ => {}
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for (fname, fv) in fields {
                let wanted = norm(fname);
                let Some((json_name, prop)) =
                    props.and_then(|p| p.iter().find(|(k, _)| k.to_ascii_lowercase() == wanted))
                else {
                    // Go's `json:",inline"` members (IngressRule's ingressRuleValue, Volume's
                    // volumeSource, Probe's handler, …) are a message of their own in protobuf
                    // but flat in JSON: map their fields onto this object's schema.
                    if matches!(fv, Dbg::Struct(..))
                        && let Some(Value::Object(inner)) = to_json(s, fv, schema)
                    {
                        out.extend(inner);
                    }
                    continue;
                };
                if matches!(fv, Dbg::Num(n) if n == "0")
                    && OMITTED_ZEROS.contains(&json_name.as_str())
                {
                    continue;
                }
                if let Some(v) = to_json(s, fv, prop) {
                    out.insert(json_name.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kubectl create namespace foo` as kubectl 1.32 sends it (kubectl-wire.md §0.2).
    const CREATE_NAMESPACE: &[u8] = &[
        0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x4e, 0x61, 0x6d,
        0x65, 0x73, 0x70, 0x61, 0x63, 0x65, 0x12, 0x1b, 0x0a, 0x13, 0x0a, 0x03, 0x66, 0x6f, 0x6f,
        0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12,
        0x00, 0x1a, 0x02, 0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
    ];

    #[test]
    fn kubectl_create_namespace() {
        let obj = decode(CREATE_NAMESPACE).unwrap_or_default();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"},
                "spec": {}, "status": {}})
        );
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
        let mut out = MAGIC.to_vec();
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        out.extend(unknown.encode_to_vec());
        out
    }

    #[test]
    fn deployments_services_and_secrets_keep_every_field() {
        use k8s_pb::api::apps::v1 as apps;
        use k8s_pb::api::core::v1 as core;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        let labels: std::collections::BTreeMap<String, String> =
            [("app".to_string(), "web".to_string())].into();
        let deploy = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: Some("web".into()),
                labels: labels.clone(),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: labels.clone(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels: labels.clone(),
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("nginx".into()),
                            image: Some("nginx:1.27".into()),
                            command: vec!["sh".into(), "-c".into(), "echo \"hi\"\n".into()],
                            ports: vec![core::ContainerPort {
                                container_port: Some(80),
                                ..Default::default()
                            }],
                            resources: Some(core::ResourceRequirements {
                                limits: [(
                                    "cpu".to_string(),
                                    k8s_pb::apimachinery::pkg::api::resource::Quantity {
                                        string: Some("500m".into()),
                                    },
                                )]
                                .into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        };
        let obj =
            decode(&envelope("apps/v1", "Deployment", deploy.encode_to_vec())).unwrap_or_default();
        assert_eq!(obj["spec"]["replicas"], 0);
        assert_eq!(obj["spec"]["selector"]["matchLabels"]["app"], "web");
        let c = &obj["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx:1.27");
        assert_eq!(c["command"][2], "echo \"hi\"\n");
        assert_eq!(c["ports"][0]["containerPort"], 80);
        assert_eq!(c["resources"]["limits"]["cpu"], "500m");

        let svc = core::Service {
            metadata: Some(meta::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            }),
            spec: Some(core::ServiceSpec {
                cluster_ip: Some("None".into()),
                r#type: Some("ClusterIP".into()),
                selector: labels,
                ports: vec![core::ServicePort {
                    name: Some("80-8080".into()),
                    port: Some(80),
                    protocol: Some("TCP".into()),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        };
        let obj = decode(&envelope("v1", "Service", svc.encode_to_vec())).unwrap_or_default();
        assert_eq!(obj["spec"]["clusterIP"], "None");
        assert_eq!(obj["spec"]["type"], "ClusterIP");
        assert_eq!(obj["spec"]["ports"][0]["targetPort"], 8080);

        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("s".into()),
                ..Default::default()
            }),
            data: [("k".to_string(), b"v\x00\xff".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let obj = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap_or_default();
        assert_eq!(obj["data"]["k"], B64.encode(b"v\x00\xff"));
        assert_eq!(obj["type"], "Opaque");
    }

    /// `kubectl create ingress demo --rule=/foo*=web:80`: the rule's `http` sits in protobuf's
    /// `ingressRuleValue` message and is flat in JSON.
    #[test]
    fn inline_members_are_flattened() {
        use k8s_pb::api::networking::v1 as net;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let ingress = net::Ingress {
            metadata: Some(meta::ObjectMeta {
                name: Some("demo".into()),
                ..Default::default()
            }),
            spec: Some(net::IngressSpec {
                rules: vec![net::IngressRule {
                    host: Some(String::new()),
                    ingress_rule_value: Some(net::IngressRuleValue {
                        http: Some(net::HttpIngressRuleValue {
                            paths: vec![net::HttpIngressPath {
                                path: Some("/foo".into()),
                                path_type: Some("Prefix".into()),
                                backend: Some(net::IngressBackend {
                                    service: Some(net::IngressServiceBackend {
                                        name: Some("web".into()),
                                        port: Some(net::ServiceBackendPort {
                                            number: Some(80),
                                            name: Some(String::new()),
                                        }),
                                    }),
                                    resource: None,
                                }),
                            }],
                        }),
                    }),
                }],
                ..Default::default()
            }),
            status: None,
        };
        let obj = decode(&envelope(
            "networking.k8s.io/v1",
            "Ingress",
            ingress.encode_to_vec(),
        ))
        .unwrap_or_default();
        let path = &obj["spec"]["rules"][0]["http"]["paths"][0];
        assert_eq!(path["path"], "/foo");
        assert_eq!(path["pathType"], "Prefix");
        assert_eq!(path["backend"]["service"]["port"]["number"], 80);
    }

    #[test]
    fn bad_bodies_are_rejected() {
        assert!(decode(b"not protobuf").is_err());
        assert!(decode(&envelope("v1", "Nonsense", vec![])).is_err());
    }
}
