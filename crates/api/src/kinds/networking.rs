//! networking.k8s.io/v1: Ingresses and IngressClasses (`pkg/apis/networking/validation`).

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use super::Strategy;
use crate::status::Cause;
use crate::validation::field::{self, Path};
use crate::validation::names;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const MAX_CONTROLLER_LEN: usize = 250;

/// `validateIngressBackend`.
fn validate_backend(backend: &IngressBackend, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => {
            causes.push(field::invalid(
                path,
                "",
                "cannot set both resource and service backends",
            ));
        }
        (None, Some(r)) => {
            if r.kind.is_empty() {
                causes.push(field::required(&path.child("resource").child("kind"), ""));
            }
            if r.name.is_empty() {
                causes.push(field::required(&path.child("resource").child("name"), ""));
            }
        }
        (Some(svc), None) => {
            let sp = path.child("service");
            if svc.name.is_empty() {
                causes.push(field::required(&sp.child("name"), ""));
            } else {
                for problem in names::dns1035_label(&svc.name) {
                    causes.push(field::invalid(
                        &sp.child("name"),
                        svc.name.as_str(),
                        &problem,
                    ));
                }
            }
            let port = svc.port.clone().unwrap_or_default();
            let name = port.name.as_deref().unwrap_or_default();
            let number = port.number.unwrap_or(0);
            match (name.is_empty(), number == 0) {
                (false, false) => causes.push(field::invalid(
                    &sp.child("port"),
                    "",
                    "cannot set both port name & port number",
                )),
                (false, true) => {
                    for problem in names::port_name(name) {
                        causes.push(field::invalid(
                            &sp.child("port").child("name"),
                            name,
                            &problem,
                        ));
                    }
                }
                (true, false) => {
                    for problem in names::port_num(i64::from(number)) {
                        causes.push(field::invalid(
                            &sp.child("port").child("number"),
                            number,
                            &problem,
                        ));
                    }
                }
                (true, true) => causes.push(field::required(
                    &sp.child("port"),
                    "port name or number is required",
                )),
            }
        }
        (None, None) => causes.push(field::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    causes
}

fn validate_host(host: &str, path: &Path) -> Vec<Cause> {
    let mut causes = Vec::new();
    if names::ip(host).is_empty() {
        causes.push(field::invalid(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
        return causes;
    }
    for problem in names::wildcard_dns1123_subdomain(host) {
        causes.push(field::invalid(path, host, &problem));
    }
    causes
}

impl Strategy for Ingress {
    fn prepare_create(&mut self) {
        self.status = Some(Default::default());
    }

    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec");
        let spec = self.spec.clone().unwrap_or_default();
        let mut causes = Vec::new();
        let rules = spec.rules.clone().unwrap_or_default();
        if spec.default_backend.is_none() && rules.is_empty() {
            causes.push(field::invalid(
                &path,
                field::Bad::Raw("networking.IngressSpec{...}".into()),
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if let Some(b) = &spec.default_backend {
            causes.extend(validate_backend(b, &path.child("defaultBackend")));
        }
        for (i, rule) in rules.iter().enumerate() {
            let rp = path.child("rules").index(i);
            if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
                causes.extend(validate_host(host, &rp.child("host")));
            }
            let Some(http) = &rule.http else { continue };
            let pp = rp.child("http").child("paths");
            if http.paths.is_empty() {
                causes.push(field::required(&pp, ""));
            }
            for (j, p) in http.paths.iter().enumerate() {
                let jp = pp.index(j);
                let ty = p.path_type.as_str();
                if ty.is_empty() {
                    causes.push(field::required(
                        &jp.child("pathType"),
                        "pathType must be specified",
                    ));
                } else if !PATH_TYPES.contains(&ty) {
                    causes.push(field::not_supported(&jp.child("pathType"), ty, PATH_TYPES));
                }
                let text = p.path.as_deref().unwrap_or_default();
                if (ty == "Exact" || ty == "Prefix") && !text.starts_with('/') {
                    causes.push(field::invalid(
                        &jp.child("path"),
                        text,
                        "must be an absolute path",
                    ));
                }
                if (ty == "Exact" || ty == "Prefix")
                    && (text.contains("//") || text.contains("/./") || text.contains("/../"))
                {
                    causes.push(field::invalid(
                        &jp.child("path"),
                        text,
                        "must not contain '//', '/./' or '/../'",
                    ));
                }
                causes.extend(validate_backend(&p.backend, &jp.child("backend")));
            }
        }
        for (i, tls) in spec.tls.iter().flatten().enumerate() {
            for (j, host) in tls.hosts.iter().flatten().enumerate() {
                for problem in names::wildcard_dns1123_subdomain(host) {
                    causes.push(field::invalid(
                        &path.child("tls").index(i).child("hosts").index(j),
                        host.as_str(),
                        &problem,
                    ));
                }
            }
        }
        if let Some(class) = spec.ingress_class_name.as_deref() {
            for problem in names::dns1123_subdomain(class) {
                causes.push(field::invalid(
                    &path.child("ingressClassName"),
                    class,
                    &problem,
                ));
            }
        }
        causes
    }
}

impl Strategy for IngressClass {
    fn validate(&self) -> Vec<Cause> {
        let path = Path::new("spec").child("controller");
        let controller = self
            .spec
            .as_ref()
            .and_then(|s| s.controller.as_deref())
            .unwrap_or_default();
        let mut causes = Vec::new();
        if controller.is_empty() {
            causes.push(field::required(&path, ""));
        } else {
            for problem in names::domain_prefixed_path(controller) {
                causes.push(field::invalid(&path, controller, &problem));
            }
            if controller.len() > MAX_CONTROLLER_LEN {
                causes.push(field::too_long(&path, MAX_CONTROLLER_LEN));
            }
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = self.validate();
        let controller = |c: &Self| c.spec.as_ref().and_then(|s| s.controller.clone());
        if controller(self) != controller(old) {
            causes.push(field::invalid(
                &Path::new("spec").child("controller"),
                controller(self).unwrap_or_default(),
                field::IMMUTABLE,
            ));
        }
        causes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ingress_rules() {
        let ing: Ingress = serde_json::from_value(json!({"apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress", "metadata": {"name": "i", "namespace": "d"},
            "spec": {"rules": [{"host": "127.0.0.1", "http": {"paths": [
                {"path": "foo", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}}}},
                {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
        .unwrap_or_default();
        let lines: Vec<String> = ing.validate().iter().map(Cause::to_line).collect();
        assert_eq!(
            lines,
            vec![
                "spec.rules[0].host: Invalid value: \"127.0.0.1\": must be a DNS name, not an IP address",
                "spec.rules[0].http.paths[0].path: Invalid value: \"foo\": must be an absolute path",
                "spec.rules[0].http.paths[0].backend.service.port: Invalid value: \"\": cannot set both port name & port number",
                "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
            ]
        );
        let class: IngressClass =
            serde_json::from_value(json!({"apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass", "metadata": {"name": "niwa"},
            "spec": {"controller": "niwa.dev/ingress"}}))
            .unwrap_or_default();
        assert!(class.validate().is_empty());
    }
}
