//! API discovery from the resource registry: aggregated discovery v2 (`/api`, `/apis` with
//! `Accept: …;as=APIGroupDiscoveryList`, answered with exactly that Content-Type) and legacy
//! discovery (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`).

use niwa_api::{Registry, ResourceInfo};
use serde_json::{Value, json};

/// The verbs a subresource supports, as Kubernetes advertises them.
fn subresource_verbs(sub: &str) -> &'static [&'static str] {
    match sub {
        "status" | "scale" | "ephemeralcontainers" | "resize" => &["get", "patch", "update"],
        "binding" | "eviction" | "token" => &["create"],
        "log" => &["get"],
        "exec" | "portforward" | "attach" | "proxy" => &["create", "get"],
        "finalize" => &["update"],
        _ => &["get"],
    }
}

/// The kind a subresource's requests and responses carry.
fn subresource_kind(info: &ResourceInfo, sub: &str) -> (String, String, String) {
    let own = (
        info.group.to_string(),
        info.version.to_string(),
        info.kind.to_string(),
    );
    let core = |k: &str| (String::new(), "v1".to_string(), k.to_string());
    match sub {
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into()),
        "binding" => core("Binding"),
        "eviction" => ("policy".into(), "v1".into(), "Eviction".into()),
        "log" | "exec" | "portforward" | "attach" => core(match sub {
            "log" => "Pod",
            "exec" => "PodExecOptions",
            "attach" => "PodAttachOptions",
            _ => "PodPortForwardOptions",
        }),
        "proxy" => core(match info.kind {
            "Node" => "NodeProxyOptions",
            "Service" => "ServiceProxyOptions",
            _ => "PodProxyOptions",
        }),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
        ),
        _ => own,
    }
}

fn resources_of(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceInfo> {
    let (group, version) = (group.to_string(), version.to_string());
    Registry
        .all()
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

fn group_names() -> Vec<&'static str> {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in Registry.group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
}

fn versions_of(group: &str) -> Vec<&'static str> {
    let mut versions = Vec::new();
    for (g, v) in Registry.group_versions() {
        if g == group && !versions.contains(&v) {
            versions.push(v);
        }
    }
    versions
}

/// `/api/v1`, `/apis/<group>/<version>`: an `APIResourceList`; `None` when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in resources_of(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, k) = subresource_kind(r, sub);
            let mut entry = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": subresource_verbs(sub),
            });
            if (g.as_str(), v.as_str()) != (r.group, r.version) {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// `/api` (legacy): `APIVersions`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": versions_of(""),
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = versions_of(group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis/<group>` (legacy): `APIGroup`; `None` when not served.
pub fn group(group: &str) -> Option<Value> {
    if group.is_empty() || !group_names().contains(&group) {
        return None;
    }
    let mut g = api_group(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/apis` (legacy): `APIGroupList`.
pub fn groups() -> Value {
    let groups: Vec<Value> = group_names().into_iter().map(api_group).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Aggregated discovery: one `APIGroupDiscovery` per group (`/apis`), or the core group alone
/// (`/api`, whose item has an empty name).
pub fn aggregated(core: bool, version: &str) -> Value {
    let groups: Vec<&str> = if core { vec![""] } else { group_names() };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let versions: Vec<Value> = versions_of(g)
                .into_iter()
                .map(|v| {
                    let resources: Vec<Value> = resources_of(g, v)
                        .map(|r| {
                            let subresources: Vec<Value> = r
                                .subresources
                                .iter()
                                .map(|sub| {
                                    let (sg, sv, sk) = subresource_kind(r, sub);
                                    json!({
                                        "subresource": sub,
                                        "responseKind": {"group": sg, "version": sv, "kind": sk},
                                        "verbs": subresource_verbs(sub),
                                    })
                                })
                                .collect();
                            let mut entry = json!({
                                "resource": r.plural,
                                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular,
                                "verbs": r.verbs,
                            });
                            if !r.short_names.is_empty() {
                                entry["shortNames"] = json!(r.short_names);
                            }
                            if !r.categories.is_empty() {
                                entry["categories"] = json!(r.categories);
                            }
                            if !subresources.is_empty() {
                                entry["subresources"] = json!(subresources);
                            }
                            entry
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_aggregated_discovery_agree() {
        let core = resource_list("", "v1").unwrap_or_default();
        let pods = core["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "pods").cloned())
            .unwrap_or_default();
        assert_eq!(pods["shortNames"][0], "po");
        assert_eq!(pods["categories"][0], "all");
        assert!(resource_list("nope", "v1").is_none());

        let apps = resource_list("apps", "v1").unwrap_or_default();
        let scale = apps["resources"]
            .as_array()
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r["name"] == "deployments/scale")
                    .cloned()
            })
            .unwrap_or_default();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");

        let agg = aggregated(false, "v2");
        let apps = agg["items"]
            .as_array()
            .and_then(|i| i.iter().find(|g| g["metadata"]["name"] == "apps").cloned())
            .unwrap_or_default();
        let deploy = &apps["versions"][0]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "deployments").cloned())
            .unwrap_or_default();
        assert_eq!(deploy["scope"], "Namespaced");
        assert_eq!(deploy["shortNames"][0], "deploy");
        let core = aggregated(true, "v2");
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        assert!(groups()["groups"].as_array().is_some_and(|g| !g.is_empty()));
        assert_eq!(
            group("apps").unwrap_or_default()["preferredVersion"]["version"],
            "v1"
        );
    }
}
