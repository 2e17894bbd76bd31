//! Golden cases: Kubernetes' documented path-matching table, host wildcards, precedence.

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;

/// `(pathType, path, service)`.
type PathSpec<'a> = (&'a str, &'a str, &'a str);
/// `(host, paths)`.
type RuleSpec<'a> = (Option<&'a str>, &'a [PathSpec<'a>]);
/// `(rules as (pathType, path), request path, matches)`.
type PathCase<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);

/// An Ingress from a compact description: `rules` is `[(host, [(pathType, path, service)])]`.
fn ingress(name: &str, age: i64, rules: &[RuleSpec<'_>]) -> Ingress {
    let rules: Vec<_> = rules
        .iter()
        .map(|(host, paths)| {
            let paths: Vec<_> = paths
                .iter()
                .map(|(t, p, svc)| {
                    json!({"pathType": t, "path": p,
                           "backend": {"service": {"name": svc, "port": {"number": 80}}}})
                })
                .collect();
            let mut rule = json!({"http": {"paths": paths}});
            if let Some(h) = host {
                rule["host"] = json!(h);
            }
            rule
        })
        .collect();
    let mut ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"rules": rules}
    }))
    .expect("ingress");
    let t = jiff_time(age);
    ing.metadata.creation_timestamp = Some(t);
    ing
}

fn jiff_time(seconds: i64) -> Time {
    serde_json::from_value(json!(format!(
        "2024-01-01T00:{:02}:{:02}Z",
        seconds / 60,
        seconds % 60
    )))
    .expect("time")
}

fn routed(table: &RouteTable, host: &str, path: &str) -> Option<String> {
    match table.route(host, path) {
        Decision::Route(r) => match &r.backend {
            Backend::Service { service, .. } => Some(service.name.clone()),
            Backend::Invalid { reason } => Some(format!("invalid: {reason}")),
        },
        Decision::Default(Backend::Service { service, .. }, _) => {
            Some(format!("default:{}", service.name))
        }
        Decision::Default(..) => Some("default:invalid".into()),
        Decision::NotFound => None,
    }
}

/// https://kubernetes.io/docs/concepts/services-networking/ingress/#examples — the whole table.
#[test]
fn kubernetes_documented_path_examples() {
    let cases: &[PathCase<'_>] = &[
        (&[("Prefix", "/")], "/anything/at/all", true),
        (&[("Exact", "/foo")], "/foo", true),
        (&[("Exact", "/foo")], "/bar", false),
        (&[("Exact", "/foo")], "/foo/", false),
        (&[("Exact", "/foo/")], "/foo", false),
        (&[("Prefix", "/foo")], "/foo", true),
        (&[("Prefix", "/foo")], "/foo/", true),
        (&[("Prefix", "/foo/")], "/foo", true),
        (&[("Prefix", "/foo/")], "/foo/", true),
        (&[("Prefix", "/aaa/bb")], "/aaa/bbb", false),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb", true),
        (&[("Prefix", "/aaa/bbb/")], "/aaa/bbb", true),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/", true),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", true),
        (&[("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", false),
        (&[("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", true),
        (&[("Prefix", "/aaa")], "/ccc", false),
    ];
    for (paths, request, matches) in cases {
        let rules: Vec<(&str, &str, &str)> = paths.iter().map(|(t, p)| (*t, *p, "svc")).collect();
        let table = RouteTable::build([&ingress("i", 0, &[(None, &rules)])]);
        assert_eq!(
            routed(&table, "example.com", request).is_some(),
            *matches,
            "{paths:?} vs {request}"
        );
    }
}

#[test]
fn longest_path_wins_then_exact_over_prefix() {
    let table = RouteTable::build([&ingress(
        "i",
        0,
        &[(
            None,
            &[
                ("Prefix", "/", "root"),
                ("Prefix", "/aaa", "aaa"),
                ("Prefix", "/aaa/bbb", "bbb"),
                ("Prefix", "/foo", "foo-prefix"),
                ("Exact", "/foo", "foo-exact"),
                ("ImplementationSpecific", "/bar", "bar-is"),
                ("Prefix", "/bar", "bar-prefix"),
            ],
        )],
    )]);
    assert_eq!(routed(&table, "h", "/aaa/bbb").as_deref(), Some("bbb"));
    assert_eq!(routed(&table, "h", "/aaa/ccc").as_deref(), Some("aaa"));
    assert_eq!(routed(&table, "h", "/ccc").as_deref(), Some("root"));
    assert_eq!(routed(&table, "h", "/foo").as_deref(), Some("foo-exact"));
    assert_eq!(routed(&table, "h", "/foo/x").as_deref(), Some("foo-prefix"));
    assert_eq!(routed(&table, "h", "/bar").as_deref(), Some("bar-prefix"));
    // ImplementationSpecific is a string prefix: /barn is not a /bar element, but matches it.
    assert_eq!(routed(&table, "h", "/barn").as_deref(), Some("bar-is"));
}

#[test]
fn hosts_exact_wildcard_and_catch_all() {
    let table = RouteTable::build([&ingress(
        "i",
        0,
        &[
            (Some("foo.bar.com"), &[("Prefix", "/", "exact")]),
            (Some("*.bar.com"), &[("Prefix", "/", "wild")]),
            (Some("*.x.bar.com"), &[("Prefix", "/", "wild-longer")]),
            (None, &[("Prefix", "/only-here", "any")]),
        ],
    )]);
    assert_eq!(routed(&table, "foo.bar.com", "/").as_deref(), Some("exact"));
    assert_eq!(
        routed(&table, "FOO.bar.com:8080", "/").as_deref(),
        Some("exact")
    );
    assert_eq!(
        routed(&table, "foo.bar.com.", "/").as_deref(),
        Some("exact")
    );
    assert_eq!(routed(&table, "baz.bar.com", "/").as_deref(), Some("wild"));
    assert_eq!(
        routed(&table, "q.x.bar.com", "/").as_deref(),
        Some("wild-longer")
    );
    // A wildcard covers exactly one label.
    assert_eq!(routed(&table, "bar.com", "/"), None);
    assert_eq!(routed(&table, "a.b.c.bar.com", "/"), None);
    assert_eq!(
        routed(&table, "other.com", "/only-here").as_deref(),
        Some("any")
    );
    // The most specific host has no matching path → the host-less rule is tried.
    let table = RouteTable::build([&ingress(
        "i",
        0,
        &[
            (Some("foo.com"), &[("Exact", "/a", "foo-a")]),
            (None, &[("Prefix", "/", "any")]),
        ],
    )]);
    assert_eq!(routed(&table, "foo.com", "/a").as_deref(), Some("foo-a"));
    assert_eq!(routed(&table, "foo.com", "/b").as_deref(), Some("any"));
}

#[test]
fn several_ingresses_merge_and_the_oldest_wins_a_tie() {
    let young = ingress("young", 20, &[(Some("h.com"), &[("Prefix", "/", "young")])]);
    let old = ingress("old", 10, &[(Some("h.com"), &[("Prefix", "/", "old")])]);
    let other = ingress(
        "other",
        30,
        &[(Some("h.com"), &[("Prefix", "/api", "api")])],
    );
    let table = RouteTable::build([&young, &other, &old]);
    assert_eq!(routed(&table, "h.com", "/x").as_deref(), Some("old"));
    assert_eq!(routed(&table, "h.com", "/api/v1").as_deref(), Some("api"));
}

#[test]
fn default_backend_and_not_found() {
    let mut with_default = ingress("d", 5, &[(Some("a.com"), &[("Exact", "/", "a")])]);
    with_default.spec.as_mut().expect("spec").default_backend = Some(
        serde_json::from_value(json!({"service": {"name": "fallback", "port": {"name": "http"}}}))
            .expect("backend"),
    );
    let table = RouteTable::build([&with_default]);
    assert_eq!(routed(&table, "a.com", "/").as_deref(), Some("a"));
    assert_eq!(
        routed(&table, "b.com", "/").as_deref(),
        Some("default:fallback")
    );
    match table.route("b.com", "/") {
        Decision::Default(Backend::Service { port, .. }, ingress) => {
            assert_eq!(*port, PortRef::Name("http".into()));
            assert_eq!(ingress.name, "d");
        }
        other => panic!("unexpected {other:?}"),
    }
    let table = RouteTable::build([&ingress("n", 0, &[(Some("a.com"), &[("Exact", "/", "a")])])]);
    assert_eq!(table.route("b.com", "/"), Decision::NotFound);
}

#[test]
fn invalid_rules_are_reported_not_fatal() {
    let mut ing = ingress(
        "bad",
        0,
        &[(None, &[("Regex", "/x", "s"), ("Prefix", "y", "s")])],
    );
    ing.spec
        .as_mut()
        .expect("spec")
        .rules
        .as_mut()
        .expect("rules")[0]
        .http
        .as_mut()
        .expect("http")
        .paths
        .push(
            serde_json::from_value(json!({"pathType": "Prefix", "path": "/r",
                "backend": {"resource": {"kind": "StorageBucket", "name": "b"}}}))
            .expect("path"),
        );
    let table = RouteTable::build([&ing]);
    assert_eq!(table.problems.len(), 2, "{:?}", table.problems);
    assert!(
        routed(&table, "h", "/r")
            .expect("routed")
            .starts_with("invalid: resource backends")
    );
}

#[test]
fn tls_secret_by_sni() {
    let mut ing = ingress("t", 0, &[(Some("a.com"), &[("Prefix", "/", "a")])]);
    ing.spec.as_mut().expect("spec").tls = Some(
        serde_json::from_value(json!([
            {"hosts": ["*.wild.com"], "secretName": "wild"},
            {"hosts": ["a.com", "b.com"], "secretName": "ab"},
            {"secretName": "fallback"}
        ]))
        .expect("tls"),
    );
    let table = RouteTable::build([&ing]);
    let secret = |sni: Option<&str>| table.tls_secret(sni).map(|s| s.name.clone());
    assert_eq!(secret(Some("a.com")).as_deref(), Some("ab"));
    assert_eq!(secret(Some("B.com")).as_deref(), Some("ab"));
    assert_eq!(secret(Some("x.wild.com")).as_deref(), Some("wild"));
    assert_eq!(secret(Some("nothing.org")).as_deref(), Some("fallback"));
    assert_eq!(secret(None).as_deref(), Some("fallback"));
    let names: Vec<_> = table
        .tls_secrets()
        .into_iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names.len(), 3);
}
