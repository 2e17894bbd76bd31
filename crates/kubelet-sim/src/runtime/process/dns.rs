//! A pod's `/etc/resolv.conf` (by `dnsPolicy` and `dnsConfig`, as the kubelet writes it) and its
//! Kubernetes-managed `/etc/hosts`.

use k8s_openapi::api::core::v1::Pod;

/// The cluster's DNS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDns {
    pub nameserver: String,
    pub domain: String,
    /// The host's resolv.conf (for `dnsPolicy: Default`).
    pub host_resolv_conf: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct ResolvConf {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

fn parse(text: &str) -> ResolvConf {
    let mut r = ResolvConf::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => r.nameservers.extend(f.next().map(str::to_string)),
            Some("search" | "domain") => r.searches = f.map(str::to_string).collect(),
            Some("options") => {
                for o in f {
                    let (k, v) = o
                        .split_once(':')
                        .map_or((o, None), |(k, v)| (k, Some(v.to_string())));
                    r.options.push((k.to_string(), v));
                }
            }
            _ => {}
        }
    }
    r
}

fn render(r: &ResolvConf) -> String {
    let mut out = String::new();
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    for ns in &r.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !r.options.is_empty() {
        let opts: Vec<String> = r
            .options
            .iter()
            .map(|(k, v)| v.as_ref().map_or(k.clone(), |v| format!("{k}:{v}")))
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// The pod's resolv.conf.
pub fn resolv_conf(pod: &Pod, dns: &ClusterDns) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = ResolvConf {
        nameservers: vec![dns.nameserver.clone()],
        searches: vec![
            format!("{ns}.svc.{}", dns.domain),
            format!("svc.{}", dns.domain),
            dns.domain.clone(),
        ],
        options: vec![("ndots".into(), Some("5".into()))],
    };
    let mut conf = match policy {
        "None" => ResolvConf::default(),
        "Default" => parse(&dns.host_resolv_conf),
        "ClusterFirst" if host_network => parse(&dns.host_resolv_conf),
        _ => cluster,
    };
    if let Some(c) = &spec.dns_config {
        for n in c.nameservers.iter().flatten() {
            if !conf.nameservers.contains(n) {
                conf.nameservers.push(n.clone());
            }
        }
        conf.nameservers.truncate(3);
        for s in c.searches.iter().flatten() {
            if !conf.searches.contains(s) {
                conf.searches.push(s.clone());
            }
        }
        conf.searches.truncate(32);
        for o in c.options.iter().flatten() {
            let Some(name) = o.name.clone() else { continue };
            conf.options.retain(|(k, _)| *k != name);
            conf.options.push((name, o.value.clone()));
        }
    }
    render(&conf)
}

/// The pod's hostname and (with a subdomain) fully qualified name.
pub fn hostnames(pod: &Pod, domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = spec
        .hostname
        .clone()
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let fqdn = spec
        .subdomain
        .filter(|s| !s.is_empty())
        .map(|sub| format!("{name}.{sub}.{ns}.svc.{domain}"));
    (name, fqdn)
}

/// The Kubernetes-managed /etc/hosts.
pub fn hosts_file(pod: &Pod, pod_ip: &str, domain: &str) -> String {
    let (name, fqdn) = hostnames(pod, domain);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    match fqdn {
        Some(f) => out.push_str(&format!("{pod_ip}\t{f}\t{name}\n")),
        None => out.push_str(&format!("{pod_ip}\t{name}\n")),
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dns() -> ClusterDns {
        ClusterDns {
            nameserver: "127.96.0.10".into(),
            domain: "cluster.local".into(),
            host_resolv_conf: "nameserver 127.0.0.53\nsearch corp.example\noptions edns0\n".into(),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec}),
        )
        .unwrap_or_default()
    }

    #[test]
    fn cluster_first_is_the_default() {
        assert_eq!(
            resolv_conf(&pod(json!({"containers": []})), &dns()),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_and_none_with_dns_config() {
        assert_eq!(
            resolv_conf(
                &pod(json!({"dnsPolicy": "Default", "containers": []})),
                &dns()
            ),
            "search corp.example\nnameserver 127.0.0.53\noptions edns0\n"
        );
        let none = pod(json!({"dnsPolicy": "None", "containers": [], "dnsConfig": {
            "nameservers": ["127.0.0.9"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            resolv_conf(&none, &dns()),
            "search a.example\nnameserver 127.0.0.9\noptions ndots:2 edns0\n"
        );
        let merged = pod(
            json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
        );
        assert!(resolv_conf(&merged, &dns()).ends_with("options ndots:1\n"));
    }

    #[test]
    fn hosts_with_subdomain_and_aliases() {
        let p = pod(
            json!({"hostname": "db", "subdomain": "dbs", "containers": [],
            "hostAliases": [{"ip": "127.0.0.7", "hostnames": ["foo.local", "bar.local"]}]}),
        );
        let h = hosts_file(&p, "127.244.1.9", "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("127.244.1.9\tdb.dbs.shop.svc.cluster.local\tdb\n"));
        assert!(h.ends_with("# Entries added by HostAliases.\n127.0.0.7\tfoo.local\tbar.local\n"));
    }
}
