//! Golden tests: real kubectl protobuf bodies and `k8s-pb` messages decoded to JSON.

use super::*;

/// `kubectl create namespace foo` as kubectl 1.32 sends it (kubectl-wire.md §0.2).
const CREATE_NAMESPACE: &[u8] = &[
    0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09, 0x4e, 0x61, 0x6d, 0x65,
    0x73, 0x70, 0x61, 0x63, 0x65, 0x12, 0x1b, 0x0a, 0x13, 0x0a, 0x03, 0x66, 0x6f, 0x6f, 0x12, 0x00,
    0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x00, 0x1a, 0x02,
    0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
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
