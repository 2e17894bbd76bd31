//! Content negotiation: what a request body is (JSON, YAML, the Kubernetes protobuf envelope, the
//! four patch types) and what a response should be (JSON, YAML, a `Table`, partial object metadata,
//! aggregated discovery), from `Content-Type` and `Accept`.

/// `Content-Type` of JSON answers.
pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// Aggregated discovery v2; kubectl reads `/api` and `/apis` as aggregated only with exactly this
/// Content-Type (kubectl-wire.md §0.4).
pub const DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const DISCOVERY_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
    Protobuf,
}

/// The body format of a `Content-Type` (without parameters); `None` when unsupported.
pub fn body_format(content_type: &str) -> Option<BodyFormat> {
    match essence(content_type).as_str() {
        "" | "application/json" | "*/*" | "text/json" => Some(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | APPLY_PATCH => {
            Some(BodyFormat::Yaml)
        }
        PROTOBUF => Some(BodyFormat::Protobuf),
        _ => None,
    }
}

/// The patch type of a PATCH `Content-Type`, as `rest::Rest::patch` names it.
pub fn patch_type(content_type: &str) -> Option<&'static str> {
    match essence(content_type).as_str() {
        MERGE_PATCH => Some(MERGE_PATCH),
        JSON_PATCH => Some(JSON_PATCH),
        STRATEGIC_MERGE_PATCH => Some(STRATEGIC_MERGE_PATCH),
        APPLY_PATCH => Some(APPLY_PATCH),
        _ => None,
    }
}

/// `type/subtype` in lower case, parameters dropped.
fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// What a response should be rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// `meta.k8s.io` Table, in this version (`v1` or `v1beta1`).
    Table(&'static str),
    /// `meta.k8s.io` PartialObjectMetadata (or its List), in this version.
    PartialMetadata(&'static str),
    /// Aggregated discovery (`apidiscovery.k8s.io`), in this version (`v2` or `v2beta1`).
    Discovery(&'static str),
}

/// One media range of an Accept header.
#[derive(Debug, Default)]
struct MediaRange<'a> {
    essence: String,
    as_kind: &'a str,
    group: &'a str,
    version: &'a str,
}

fn media_ranges(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .map(|range| {
            let mut parts = range.split(';');
            let mut m = MediaRange {
                essence: parts.next().unwrap_or_default().trim().to_ascii_lowercase(),
                ..MediaRange::default()
            };
            for p in parts {
                match p.trim().split_once('=') {
                    Some(("as", v)) => m.as_kind = v.trim(),
                    Some(("g", v)) => m.group = v.trim(),
                    Some(("v", v)) => m.version = v.trim(),
                    _ => {}
                }
            }
            m
        })
        .collect()
}

fn meta_version(v: &str) -> Option<&'static str> {
    match v {
        "v1" => Some("v1"),
        "v1beta1" => Some("v1beta1"),
        _ => None,
    }
}

/// The first representation in `accept` that niwa can produce; JSON when none is (clients that
/// prefer protobuf always offer JSON as well, and accept it).
pub fn negotiate(accept: &str) -> Output {
    for m in media_ranges(accept) {
        let json_like = matches!(
            m.essence.as_str(),
            "application/json" | "*/*" | "application/*"
        );
        match (m.as_kind, m.group) {
            ("Table", "meta.k8s.io") if json_like => {
                if let Some(v) = meta_version(m.version) {
                    return Output::Table(v);
                }
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io") if json_like => {
                if let Some(v) = meta_version(m.version) {
                    return Output::PartialMetadata(v);
                }
            }
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io") if json_like => match m.version {
                "v2" => return Output::Discovery("v2"),
                "v2beta1" => return Output::Discovery("v2beta1"),
                _ => {}
            },
            ("", _) if json_like => return Output::Json,
            ("", _) if matches!(m.essence.as_str(), "application/yaml" | "text/yaml") => {
                return Output::Yaml;
            }
            _ => {}
        }
    }
    Output::Json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(table), Output::Table("v1"));
        let discovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(discovery), Output::Discovery("v2"));
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf,application/json"),
            Output::Json
        );
        assert_eq!(negotiate("application/yaml"), Output::Yaml);
        assert_eq!(negotiate(""), Output::Json);
        assert_eq!(negotiate("application/json, */*"), Output::Json);
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Output::PartialMetadata("v1")
        );
    }

    #[test]
    fn body_formats() {
        assert_eq!(
            body_format("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(body_format(""), Some(BodyFormat::Json));
        assert_eq!(body_format("application/yaml"), Some(BodyFormat::Yaml));
        assert_eq!(body_format(PROTOBUF), Some(BodyFormat::Protobuf));
        assert_eq!(body_format("text/plain"), None);
        assert_eq!(
            patch_type("application/strategic-merge-patch+json"),
            Some(STRATEGIC_MERGE_PATCH)
        );
        assert_eq!(patch_type("application/json"), None);
    }
}
