//! A container's environment, as the kubelet builds it: Service links, then `envFrom`
//! (ConfigMaps and Secrets, with prefixes), then `env` (values with `$(VAR)` expansion, and
//! `valueFrom`: configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef), with the kubelet's
//! error messages for what is missing. niwa adds `POD_IP`, `HOSTNAME` and a default `PATH` (the
//! host's binaries stand in for the image's), which a container's own `env` can override.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret, Service};
use niwa_api::quantity::Quantity;
use niwa_client::{Api, Client};

use super::enter::DEFAULT_PATH;
use crate::images::catalog::expand;

/// What the environment is built from besides the pod.
#[derive(Clone, Debug)]
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub pod_ip: String,
    pub host_ip: String,
    /// Node allocatable, for resourceFieldRef of unset limits.
    pub node_cpu: &'a str,
    pub node_memory: &'a str,
}

/// An ordered environment (later entries override earlier ones of the same name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn set(&mut self, k: &str, v: String) {
        if let Some(e) = self.vars.iter_mut().find(|(n, _)| n == k) {
            e.1 = v;
        } else {
            self.vars.push((k.to_string(), v));
        }
    }

    pub fn get(&self, k: &str) -> Option<String> {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.vars
    }
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

async fn get_config_map(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<ConfigMap>, String> {
    let api: Api<ConfigMap> = client.namespaced(ns);
    api.get_opt(name).await.map_err(|e| e.to_string())
}

async fn get_secret(client: &Client, ns: &str, name: &str) -> Result<Option<Secret>, String> {
    let api: Api<Secret> = client.namespaced(ns);
    api.get_opt(name).await.map_err(|e| e.to_string())
}

/// A Secret's values as text (data decoded, stringData on top).
fn secret_values(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    if let Some(sd) = &s.string_data {
        out.extend(sd.clone());
    }
    out
}

fn config_map_values(c: &ConfigMap) -> BTreeMap<String, String> {
    let mut out = c.data.clone().unwrap_or_default();
    for (k, v) in c.binary_data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

/// Kubernetes' Service environment variables (`<NAME>_SERVICE_HOST`, `<NAME>_PORT_80_TCP`, ...)
/// for every Service of the namespace with a cluster IP, plus the `kubernetes` Service.
pub fn service_links(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in services {
        let Some(spec) = &s.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let name = s
            .metadata
            .name
            .clone()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        if let Some(first) = ports.first() {
            out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
            let proto = first
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".into())
                .to_lowercase();
            out.push((
                format!("{name}_PORT"),
                format!("{proto}://{ip}:{}", first.port),
            ));
        }
        for p in &ports {
            if let Some(pn) = &p.name {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let base = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((
                base.clone(),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
            out.push((format!("{base}_PROTO"), proto.to_lowercase()));
            out.push((format!("{base}_PORT"), p.port.to_string()));
            out.push((format!("{base}_ADDR"), ip.to_string()));
        }
    }
    out
}

async fn services_for(client: &Client, pod: &Pod) -> Vec<Service> {
    let ns = namespace(pod);
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut out = Vec::new();
    if links {
        let api: Api<Service> = client.namespaced(ns);
        if let Ok(list) = api.list(&Default::default()).await {
            out.extend(list.items);
        }
    }
    if ns != "default" || !links {
        let api: Api<Service> = client.namespaced("default");
        if let Ok(Some(k)) = api.get_opt("kubernetes").await {
            out.push(k);
        }
    }
    out
}

/// The value of a `fieldRef` (downward API).
pub fn field_value(pod: &Pod, field: &str, pod_ip: &str, host_ip: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let map_key = |prefix: &str| -> Option<String> {
        let rest = field.strip_prefix(prefix)?;
        let key = rest.strip_prefix("['")?.strip_suffix("']")?;
        Some(key.to_string())
    };
    Ok(match field {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .service_account_name
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "metadata.labels" | "metadata.annotations" => {
            let map = if field == "metadata.labels" {
                &meta.labels
            } else {
                &meta.annotations
            };
            map.iter()
                .flatten()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join("\n")
        }
        f => {
            if let Some(k) = map_key("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = map_key("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath: {f}"));
            }
        }
    })
}

/// The value of a `resourceFieldRef`: the container's request or limit (a limit defaults to the
/// node's allocatable), divided by `divisor` and rounded up.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_cpu: &str,
    node_memory: &str,
) -> Result<String, String> {
    let resources = container.resources.clone().unwrap_or_default();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource : {resource:?}"))?;
    let from = match kind {
        "limits" => resources.limits.clone(),
        "requests" => resources.requests.clone().or(resources.limits.clone()),
        _ => return Err(format!("unsupported container resource : {resource:?}")),
    };
    let value = from
        .and_then(|m| m.get(name).map(|q| q.0.clone()))
        .or_else(|| match (kind, name) {
            ("limits", "cpu") => Some(node_cpu.to_string()),
            ("limits", "memory") => Some(node_memory.to_string()),
            ("requests", "cpu" | "memory" | "ephemeral-storage") => Some("0".to_string()),
            _ => None,
        });
    let value = value.unwrap_or_else(|| "0".to_string());
    let q = Quantity::parse(&value).map_err(|e| e.to_string())?;
    let d = Quantity::parse(divisor.unwrap_or("1")).map_err(|e| e.to_string())?;
    if d.milli() <= 0 {
        return Err("divisor must be positive".to_string());
    }
    let n = q.milli();
    let div = d.milli();
    let result = if n % div == 0 { n / div } else { n / div + 1 };
    Ok(result.to_string())
}

async fn value_from(
    ctx: &EnvContext<'_>,
    client: &Client,
    src: &EnvVarSource,
) -> Result<Option<String>, String> {
    let ns = namespace(ctx.pod);
    if let Some(r) = &src.config_map_key_ref {
        let optional = r.optional.unwrap_or(false);
        return match get_config_map(client, ns, &r.name).await? {
            None if optional => Ok(None),
            None => Err(format!("configmap \"{}\" not found", r.name)),
            Some(cm) => match config_map_values(&cm).get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in ConfigMap {ns}/{}",
                    r.key, r.name
                )),
            },
        };
    }
    if let Some(r) = &src.secret_key_ref {
        let optional = r.optional.unwrap_or(false);
        return match get_secret(client, ns, &r.name).await? {
            None if optional => Ok(None),
            None => Err(format!("secret \"{}\" not found", r.name)),
            Some(s) => match secret_values(&s).get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {} in Secret {ns}/{}",
                    r.key, r.name
                )),
            },
        };
    }
    if let Some(r) = &src.field_ref {
        return field_value(ctx.pod, &r.field_path, &ctx.pod_ip, &ctx.host_ip).map(Some);
    }
    if let Some(r) = &src.resource_field_ref {
        let container = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => ctx
                .pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .find(|c| c.name == name)
                .ok_or_else(|| format!("container {name:?} not found"))?,
            None => ctx.container,
        };
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return resource_value(
            container,
            &r.resource,
            divisor,
            ctx.node_cpu,
            ctx.node_memory,
        )
        .map(Some);
    }
    Ok(None)
}

/// Builds the container's environment; the error is the CreateContainerConfigError message.
pub async fn resolve(ctx: &EnvContext<'_>, client: &Client) -> Result<Env, String> {
    let mut env = Env::default();
    let pod_name = ctx.pod.metadata.name.clone().unwrap_or_default();
    env.set("PATH", DEFAULT_PATH.to_string());
    let hostname = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod_name.clone());
    env.set("HOSTNAME", hostname);
    env.set("HOME", "/root".to_string());
    for (k, v) in service_links(&services_for(client, ctx.pod).await) {
        env.set(&k, v);
    }
    env.set("POD_IP", ctx.pod_ip.clone());
    env.set("POD_NAME", pod_name);
    env.set("POD_NAMESPACE", namespace(ctx.pod).to_string());
    let ports: Vec<String> = ctx
        .container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .map(|p| p.container_port.to_string())
        .collect();
    env.set("NIWA_CONTAINER_PORTS", ports.join(","));
    let ns = namespace(ctx.pod);
    for from in ctx.container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match get_config_map(client, ns, &r.name).await? {
                Some(cm) => {
                    for (k, v) in config_map_values(&cm) {
                        env.set(&format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match get_secret(client, ns, &r.name).await? {
                Some(s) => {
                    for (k, v) in secret_values(&s) {
                        env.set(&format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    // `env` entries may refer to earlier ones (and to envFrom) with $(VAR).
    let mut defined = Env::default();
    for var in ctx.container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(src)) => value_from(ctx, client, src).await?,
            (Some(v), None) => Some(expand(v, |k| defined.get(k).or_else(|| env.get(k)))),
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            defined.set(&var.name, v.clone());
            env.set(&var.name, v);
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}]},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn downward_api_fields() {
        let p = pod();
        let f = |path: &str| field_value(&p, path, "127.244.1.5", "127.1.0.1");
        assert_eq!(f("metadata.name"), Ok("web".into()));
        assert_eq!(f("metadata.namespace"), Ok("shop".into()));
        assert_eq!(f("metadata.labels['app']"), Ok("web".into()));
        assert_eq!(f("status.podIP"), Ok("127.244.1.5".into()));
        assert_eq!(f("status.hostIP"), Ok("127.1.0.1".into()));
        assert_eq!(f("spec.nodeName"), Ok("node-1".into()));
        assert!(f("spec.bogus").is_err());
    }

    #[test]
    fn resource_fields_round_up_with_divisors() {
        let p = pod();
        let c = &p
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let r = |res: &str, div: Option<&str>| resource_value(c, res, div, "4", "16Gi");
        assert_eq!(r("requests.cpu", None), Ok("1".into()));
        assert_eq!(r("requests.cpu", Some("1m")), Ok("250".into()));
        assert_eq!(r("limits.memory", Some("1Mi")), Ok("128".into()));
        assert_eq!(
            r("limits.cpu", None),
            Ok("4".into()),
            "unset limit: node allocatable"
        );
        assert_eq!(r("requests.memory", None), Ok("67108864".into()));
    }

    #[test]
    fn service_link_variables() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "redis-primary"},
            "spec": {"clusterIP": "127.96.0.11", "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"}]},
        }))
        .unwrap_or_default();
        let vars: BTreeMap<_, _> = service_links(&[svc]).into_iter().collect();
        assert_eq!(
            vars.get("REDIS_PRIMARY_SERVICE_HOST").map(String::as_str),
            Some("127.96.0.11")
        );
        assert_eq!(
            vars.get("REDIS_PRIMARY_SERVICE_PORT").map(String::as_str),
            Some("6379")
        );
        assert_eq!(
            vars.get("REDIS_PRIMARY_PORT").map(String::as_str),
            Some("tcp://127.96.0.11:6379")
        );
        assert_eq!(
            vars.get("REDIS_PRIMARY_PORT_6379_TCP_ADDR")
                .map(String::as_str),
            Some("127.96.0.11")
        );
        assert_eq!(
            vars.get("REDIS_PRIMARY_SERVICE_PORT_REDIS")
                .map(String::as_str),
            Some("6379")
        );
    }
}
