//! Kubernetes URL paths → what a request is about (apiserver's `RequestInfoFactory`), IO-free.
//!
//! `/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}` and `/apis/{group}/{version}/...`, the
//! cluster-wide forms without `namespaces/{ns}`, the deprecated `/watch/` prefix, and the namespace
//! subresources (`/api/v1/namespaces/{name}/status|finalize`), which look like a resource in a
//! namespace but are not.

/// Namespace subresources: `namespaces/{name}/status` is not "the resource `status` in {name}".
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// The coordinates of a resource request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub resource: String,
    /// Empty for cluster-scoped resources and all-namespaces requests.
    pub namespace: String,
    /// Empty for collection requests.
    pub name: String,
    pub subresource: String,
    /// The path used the deprecated `/watch/` prefix.
    pub legacy_watch: bool,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`: the resources of one group version.
    GroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
    NotFound,
}

/// Parses the path of an `/api` or `/apis` request.
pub fn parse(path: &str) -> Route {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Route::CoreVersions,
        ["apis"] => return Route::Groups,
        ["apis", group] => return Route::Group((*group).to_string()),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::NotFound,
    };
    if rest.is_empty() {
        return Route::GroupVersion {
            group: group.into(),
            version: version.into(),
        };
    }
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let mut p = ResourcePath {
        group: group.into(),
        version: version.into(),
        legacy_watch,
        ..ResourcePath::default()
    };
    let named = |p: &mut ResourcePath, tail: &[&str]| -> bool {
        match tail {
            [resource] => p.resource = (*resource).into(),
            [resource, name] => {
                p.resource = (*resource).into();
                p.name = (*name).into();
            }
            [resource, name, sub] => {
                p.resource = (*resource).into();
                p.name = (*name).into();
                p.subresource = (*sub).into();
            }
            _ => return false,
        }
        true
    };
    let ok = match rest {
        ["namespaces", ns, sub] if NAMESPACE_SUBRESOURCES.contains(sub) => {
            named(&mut p, &["namespaces", ns, sub])
        }
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
            p.namespace = (*ns).into();
            named(&mut p, tail)
        }
        tail => named(&mut p, tail),
    };
    if ok {
        Route::Resource(p)
    } else {
        Route::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(p) => p,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(parse("/apis/"), Route::Groups);
        assert_eq!(parse("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            parse("/api/v1"),
            Route::GroupVersion {
                group: String::new(),
                version: "v1".into()
            }
        );
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(parse("/nope"), Route::NotFound);
    }

    #[test]
    fn resource_paths() {
        let p = res("/api/v1/namespaces/default/pods");
        assert_eq!(
            (p.namespace.as_str(), p.resource.as_str()),
            ("default", "pods")
        );
        let p = res("/api/v1/namespaces/default/pods/web/log");
        assert_eq!((p.name.as_str(), p.subresource.as_str()), ("web", "log"));
        let p = res("/apis/apps/v1/namespaces/x/deployments/d/scale");
        assert_eq!(
            (
                p.group.as_str(),
                p.resource.as_str(),
                p.subresource.as_str()
            ),
            ("apps", "deployments", "scale")
        );
        let p = res("/api/v1/pods");
        assert_eq!((p.namespace.as_str(), p.resource.as_str()), ("", "pods"));
        let p = res("/api/v1/nodes/n1/status");
        assert_eq!((p.name.as_str(), p.subresource.as_str()), ("n1", "status"));
        let p = res("/api/v1/watch/namespaces/a/pods");
        assert!(p.legacy_watch);
        assert_eq!(p.namespace, "a");
        assert!(matches!(
            parse("/api/v1/namespaces/a/pods/b/c/d"),
            Route::NotFound
        ));
    }

    #[test]
    fn namespaces_and_their_subresources() {
        let p = res("/api/v1/namespaces");
        assert_eq!((p.resource.as_str(), p.name.as_str()), ("namespaces", ""));
        let p = res("/api/v1/namespaces/foo");
        assert_eq!(
            (p.resource.as_str(), p.name.as_str(), p.namespace.as_str()),
            ("namespaces", "foo", "")
        );
        let p = res("/api/v1/namespaces/foo/finalize");
        assert_eq!(
            (p.resource.as_str(), p.name.as_str(), p.subresource.as_str()),
            ("namespaces", "foo", "finalize")
        );
        let p = res("/api/v1/namespaces/foo/secrets");
        assert_eq!(
            (p.resource.as_str(), p.namespace.as_str()),
            ("secrets", "foo")
        );
    }
}
