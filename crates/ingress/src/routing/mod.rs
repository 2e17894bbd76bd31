//! The IO-free core: Ingress objects → a routing table, and a request's host and path → the
//! backend that serves it.
//!
//! Semantics (Kubernetes' documented ones, and where Kubernetes leaves it open, ours):
//! * hosts: an exact host beats a `*.wildcard` (one DNS label) beats a host-less rule; when the
//!   most specific matching host has no matching path, the next one is tried (a host-less rule
//!   "applies to all inbound HTTP traffic", as Gateway API's precedence also reads);
//! * paths: the longest match wins; equal lengths prefer Exact over Prefix over
//!   ImplementationSpecific; Prefix matches element-wise ([`path`]);
//! * rules of several Ingresses for one host merge; on an exact tie the oldest Ingress wins
//!   (creation time, then namespace/name), and so for `defaultBackend`;
//! * TLS: the SNI name selects the secret by the same host precedence; a `tls` entry without
//!   hosts supplies the certificate for every other name.

pub mod host;
pub mod path;

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

pub use host::{HostPattern, normalize_host};
pub use path::{PathRule, PathType};

/// `namespace/name` of an Ingress, Service or Secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service port as an Ingress backend names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// Where a matched request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Service {
        service: ObjectKey,
        port: PortRef,
    },
    /// A backend niwa cannot serve (a `resource` backend, a Service without a port): answered 503
    /// with the reason.
    Invalid {
        reason: String,
    },
}

/// One path rule of one host, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub rule: PathRule,
    pub backend: Backend,
    pub ingress: ObjectKey,
}

/// The outcome of routing a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Route(&'a Route),
    /// No rule matched; an Ingress's `defaultBackend` takes the request.
    Default(&'a Backend, &'a ObjectKey),
    /// No rule matched and no default backend: 404.
    NotFound,
}

/// Every Ingress of the class, merged.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Host groups in precedence order; routes of a group in precedence order.
    hosts: Vec<(HostPattern, Vec<Route>)>,
    default_backend: Option<(Backend, ObjectKey)>,
    /// TLS hosts in precedence order → the Secret holding the certificate.
    tls: Vec<(HostPattern, ObjectKey)>,
    /// Rules that were skipped, with the reason.
    pub problems: Vec<String>,
}

fn backend_of(backend: &IngressBackend, namespace: &str) -> Backend {
    if let Some(service) = &backend.service {
        let port = service.port.as_ref();
        let port = match (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_ref()),
        ) {
            (Some(n), _) => match u16::try_from(n) {
                Ok(n) if n != 0 => PortRef::Number(n),
                _ => {
                    return Backend::Invalid {
                        reason: format!("service port {n} is out of range"),
                    };
                }
            },
            (None, Some(name)) if !name.is_empty() => PortRef::Name(name.clone()),
            _ => {
                return Backend::Invalid {
                    reason: format!("backend service {:?} names no port", service.name),
                };
            }
        };
        return Backend::Service {
            service: ObjectKey {
                namespace: namespace.to_string(),
                name: service.name.clone(),
            },
            port,
        };
    }
    match &backend.resource {
        Some(r) => Backend::Invalid {
            reason: format!(
                "resource backends ({} {}) are not supported",
                r.kind, r.name
            ),
        },
        None => Backend::Invalid {
            reason: "backend names neither a service nor a resource".to_string(),
        },
    }
}

impl RouteTable {
    /// Builds the table from the Ingresses of our class (in any order).
    pub fn build<'a>(ingresses: impl IntoIterator<Item = &'a Ingress>) -> RouteTable {
        let mut ordered: Vec<&Ingress> = ingresses.into_iter().collect();
        ordered.sort_by(|a, b| {
            let key = |i: &Ingress| {
                (
                    i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    i.metadata.namespace.clone(),
                    i.metadata.name.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut table = RouteTable::default();
        for ingress in ordered {
            let key = ObjectKey {
                namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
                name: ingress.metadata.name.clone().unwrap_or_default(),
            };
            let Some(spec) = ingress.spec.as_ref() else {
                continue;
            };
            if let (Some(backend), None) = (&spec.default_backend, &table.default_backend) {
                table.default_backend = Some((backend_of(backend, &key.namespace), key.clone()));
            }
            for rule in spec.rules.iter().flatten() {
                let host = HostPattern::parse(rule.host.as_deref());
                for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                    let Some(path_type) = PathType::parse(&path.path_type) else {
                        table.problems.push(format!(
                            "{key}: pathType {:?} is not Exact, Prefix or ImplementationSpecific",
                            path.path_type
                        ));
                        continue;
                    };
                    let rule = PathRule::new(path_type, path.path.as_deref());
                    if path_type != PathType::ImplementationSpecific && !rule.path.starts_with('/')
                    {
                        table
                            .problems
                            .push(format!("{key}: path {:?} must begin with '/'", rule.path));
                        continue;
                    }
                    let route = Route {
                        rule,
                        backend: backend_of(&path.backend, &key.namespace),
                        ingress: key.clone(),
                    };
                    match table.hosts.iter_mut().find(|(h, _)| *h == host) {
                        Some((_, routes)) => routes.push(route),
                        None => table.hosts.push((host.clone(), vec![route])),
                    }
                }
            }
            for tls in spec.tls.iter().flatten() {
                let Some(secret) = tls.secret_name.as_ref().filter(|s| !s.is_empty()) else {
                    continue; // TLS terminated elsewhere (SNI passthrough is not offered).
                };
                let secret = ObjectKey {
                    namespace: key.namespace.clone(),
                    name: secret.clone(),
                };
                let hosts: Vec<HostPattern> = match tls.hosts.as_deref() {
                    Some(hosts) if !hosts.is_empty() => {
                        hosts.iter().map(|h| HostPattern::parse(Some(h))).collect()
                    }
                    _ => vec![HostPattern::Any],
                };
                for host in hosts {
                    if !table.tls.iter().any(|(h, _)| *h == host) {
                        table.tls.push((host, secret.clone()));
                    }
                }
            }
        }
        // Stable sorts: equal precedence keeps the oldest Ingress first.
        table.hosts.sort_by_key(|(h, _)| h.precedence());
        for (_, routes) in &mut table.hosts {
            routes.sort_by_key(|r| r.rule.precedence());
        }
        table.tls.sort_by_key(|(h, _)| h.precedence());
        table
    }

    /// Routes a request; `host` is the raw `Host`/`:authority`, `path` the URI path.
    pub fn route(&self, host: &str, path: &str) -> Decision<'_> {
        let host = normalize_host(host);
        for (pattern, routes) in &self.hosts {
            if !pattern.matches(&host) {
                continue;
            }
            if let Some(route) = routes.iter().find(|r| r.rule.matches(path)) {
                return Decision::Route(route);
            }
        }
        match &self.default_backend {
            Some((backend, ingress)) => Decision::Default(backend, ingress),
            None => Decision::NotFound,
        }
    }

    /// The Secret whose certificate serves the TLS server name `sni` (`None`: no SNI sent).
    pub fn tls_secret(&self, sni: Option<&str>) -> Option<&ObjectKey> {
        let host = sni.map(normalize_host);
        self.tls
            .iter()
            .find(|(pattern, _)| match &host {
                Some(h) => pattern.matches(h),
                None => *pattern == HostPattern::Any,
            })
            .map(|(_, secret)| secret)
    }

    /// Every Secret any TLS entry names, once each.
    pub fn tls_secrets(&self) -> std::collections::BTreeSet<&ObjectKey> {
        self.tls.iter().map(|(_, s)| s).collect()
    }

    /// Every backend any rule or default backend names (with repeats).
    pub fn all_backends(&self) -> impl Iterator<Item = &Backend> {
        self.hosts
            .iter()
            .flat_map(|(_, routes)| routes.iter().map(|r| &r.backend))
            .chain(self.default_backend.iter().map(|(b, _)| b))
    }
}

#[cfg(test)]
mod tests;
