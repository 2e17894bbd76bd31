//! The resource registry: every kind niwa serves, with the facts discovery, kubectl and the storage
//! layer need — group/version, plural and singular names, short names, scope, verbs, subresources,
//! categories, and where objects live in the store.

/// The verbs of a fully writable resource.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Static description of one served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural lower-case resource name used in URLs (`pods`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    /// Subresources such as `status`, `scale`, `binding`, `log`.
    pub subresources: &'static [&'static str],
    /// Discovery categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
}

impl ResourceInfo {
    /// `v1` for the core group, `group/version` otherwise (the `apiVersion` of objects).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `PodList` and friends.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Prefix of this resource's keys in the store: `/registry/<group>/<resource>/`, with the core
    /// group written as `core` (ARCHITECTURE.md §3).
    pub fn store_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// The store key of one object. Cluster-scoped objects ignore `namespace`.
    pub fn store_key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{namespace}/{name}", self.store_prefix())
        } else {
            format!("{}{name}", self.store_prefix())
        }
    }

    /// Key prefix of every object of this resource in one namespace (or all, for `None`).
    pub fn store_namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.store_prefix()),
            _ => self.store_prefix(),
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, [$($short:expr),*],
     $namespaced:expr, [$($sub:expr),*], $categories:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $namespaced,
            verbs: STANDARD_VERBS,
            subresources: &[$($sub),*],
            categories: $categories,
        }
    };
}

/// Every resource niwa serves. Order is discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    resource!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        ["ns"],
        false,
        ["status", "finalize"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        ["no"],
        false,
        ["status", "proxy"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        ["po"],
        true,
        [
            "status",
            "binding",
            "log",
            "exec",
            "attach",
            "eviction",
            "ephemeralcontainers",
            "portforward"
        ],
        ALL
    ),
    resource!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        ["svc"],
        true,
        ["status", "proxy"],
        ALL
    ),
    resource!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        ["ep"],
        true,
        [],
        NONE
    ),
    resource!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        ["cm"],
        true,
        [],
        NONE
    ),
    resource!("", "v1", "Secret", "secrets", "secret", [], true, [], NONE),
    resource!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ["sa"],
        true,
        ["token"],
        NONE
    ),
    resource!("", "v1", "Event", "events", "event", ["ev"], true, [], NONE),
    resource!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        ["pv"],
        false,
        ["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ["pvc"],
        true,
        ["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        ["quota"],
        true,
        ["status"],
        NONE
    ),
    resource!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        ["limits"],
        true,
        [],
        NONE
    ),
    resource!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true,
        ["status", "scale"],
        ALL
    ),
    resource!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true,
        ["status", "scale"],
        ALL
    ),
    resource!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ["ds"],
        true,
        ["status"],
        ALL
    ),
    resource!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        ["sts"],
        true,
        ["status", "scale"],
        ALL
    ),
    resource!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        [],
        true,
        [],
        NONE
    ),
    resource!(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        [],
        true,
        ["status"],
        ALL
    ),
    resource!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        ["cj"],
        true,
        ["status"],
        ALL
    ),
    resource!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        [],
        true,
        [],
        NONE
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        ["ing"],
        true,
        ["status"],
        NONE
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        [],
        false,
        [],
        NONE
    ),
    resource!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        ["sc"],
        false,
        [],
        NONE
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        [],
        true,
        [],
        NONE
    ),
    resource!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        ["ev"],
        true,
        [],
        NONE
    ),
    resource!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        ["pdb"],
        true,
        ["status"],
        NONE
    ),
    resource!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ["hpa"],
        true,
        ["status"],
        ALL
    ),
];

/// Lookups over [`RESOURCES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl Registry {
    pub fn all(&self) -> &'static [ResourceInfo] {
        RESOURCES
    }

    /// By URL coordinates: group ("" for core), version and plural resource name.
    pub fn by_resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceInfo> {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// By an object's `apiVersion` and `kind`.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
        let (group, version) = split_api_version(api_version);
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// Resolves what a user typed (`po`, `pods`, `pod`, `Pod`, `deployments.apps`,
    /// `deploy.v1.apps`) the way kubectl's RESTMapper does. Core-group matches win over other
    /// groups for the same name, as in kubectl.
    pub fn resolve(&self, name: &str) -> Option<&'static ResourceInfo> {
        let lower = name.to_ascii_lowercase();
        let (base, group, version) = match lower.split_once('.') {
            None => (lower.as_str(), None, None),
            Some((base, rest)) => match rest.split_once('.') {
                Some((v, g))
                    if v.starts_with('v') && v[1..].starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    (base, Some(g.to_string()), Some(v.to_string()))
                }
                _ => (base, Some(rest.to_string()), None),
            },
        };
        let matches = |r: &&ResourceInfo| {
            (r.plural == base
                || r.singular == base
                || r.short_names.contains(&base)
                || r.kind.eq_ignore_ascii_case(base))
                && group.as_deref().is_none_or(|g| r.group == g)
                && version.as_deref().is_none_or(|v| r.version == v)
        };
        RESOURCES
            .iter()
            .filter(matches)
            .min_by_key(|r| (!r.group.is_empty(), r.group))
    }

    /// The distinct group/versions served, core (`v1`) first.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            if !out.contains(&(r.group, r.version)) {
                out.push((r.group, r.version));
            }
        }
        out
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_like_kubectl() {
        let reg = Registry;
        for name in ["po", "pod", "pods", "Pod"] {
            assert_eq!(reg.resolve(name).map(|r| r.kind), Some("Pod"), "{name}");
        }
        assert_eq!(reg.resolve("deploy").map(|r| r.group), Some("apps"));
        assert_eq!(
            reg.resolve("deployments.apps").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(
            reg.resolve("deploy.v1.apps").map(|r| r.kind),
            Some("Deployment")
        );
        // `ev` is both core and events.k8s.io; kubectl prefers core.
        assert_eq!(reg.resolve("ev").map(|r| r.group), Some(""));
        assert_eq!(
            reg.resolve("events.events.k8s.io").map(|r| r.group),
            Some("events.k8s.io")
        );
        assert!(reg.resolve("nonsense").is_none());
    }

    #[test]
    fn store_keys_follow_the_architecture() {
        let reg = Registry;
        let pods = reg
            .by_resource("", "v1", "pods")
            .map(|r| r.store_key("default", "web"));
        assert_eq!(pods.as_deref(), Some("/registry/core/pods/default/web"));
        let nodes = reg
            .by_kind("v1", "Node")
            .map(|r| r.store_key("ignored", "n1"));
        assert_eq!(nodes.as_deref(), Some("/registry/core/nodes/n1"));
        let deps = reg
            .by_kind("apps/v1", "Deployment")
            .map(|r| r.store_namespace_prefix(Some("ns")));
        assert_eq!(deps.as_deref(), Some("/registry/apps/deployments/ns/"));
    }

    #[test]
    fn every_resource_is_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for r in RESOURCES {
            assert!(
                seen.insert((r.group, r.version, r.plural)),
                "duplicate {}",
                r.plural
            );
            assert_eq!(r.plural, r.plural.to_ascii_lowercase());
            assert!(r.kind.starts_with(|c: char| c.is_ascii_uppercase()));
        }
        assert_eq!(Registry.group_versions().first(), Some(&("", "v1")));
    }
}
