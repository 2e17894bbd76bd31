//! What the user names on the command line: `pods`, `po web`, `deploy,svc`, `pod/web svc/api`,
//! resolved through the resource registry (plural, singular, short name or kind, optionally with
//! a group: `deployments.apps`), as kubectl's RESTMapper does.

use niwa_api::{Registry, ResourceInfo};

use crate::CliError;

/// One kind and the names asked for (none: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub info: &'static ResourceInfo,
    pub names: Vec<String>,
}

/// Resolves one resource name as typed.
pub fn resolve(kind: &str) -> Result<&'static ResourceInfo, CliError> {
    Registry.resolve(kind).ok_or_else(|| {
        CliError::Usage(format!(
            "the server doesn't have a resource type \"{kind}\""
        ))
    })
}

/// Parses `KIND [NAME...]`, `KIND1,KIND2` or `KIND/NAME...`.
pub fn parse(args: &[String]) -> Result<Vec<Target>, CliError> {
    let Some(first) = args.first() else {
        return Err(CliError::Usage(
            "you must specify the type of resource to get (pods, deployments, services, ...)"
                .into(),
        ));
    };
    if first.contains('/') {
        let mut targets: Vec<Target> = Vec::new();
        for arg in args {
            let Some((kind, name)) = arg.split_once('/') else {
                return Err(CliError::Usage(format!(
                    "there is no need to specify a resource type as a separate argument when \
                     passing arguments in resource/name form (e.g. 'niwa get resource/<resource_name>' \
                     instead of 'niwa get resource resource/<resource_name>'): {arg:?}"
                )));
            };
            if name.is_empty() {
                return Err(CliError::Usage(format!(
                    "arguments in resource/name form must have a single resource and name: {arg:?}"
                )));
            }
            let info = resolve(kind)?;
            match targets.iter_mut().find(|t| t.info == info) {
                Some(t) => t.names.push(name.to_string()),
                None => targets.push(Target {
                    info,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(targets);
    }
    let kinds: Vec<&str> = first.split(',').filter(|k| !k.is_empty()).collect();
    let names: Vec<String> = args[1..].to_vec();
    if kinds.len() > 1 && !names.is_empty() {
        return Err(CliError::Usage(
            "names can only be given with a single resource type (or use TYPE/NAME)".into(),
        ));
    }
    let mut targets = Vec::new();
    for kind in kinds {
        targets.push(Target {
            info: resolve(kind)?,
            names: names.clone(),
        });
    }
    Ok(targets)
}

/// `pod`, `deployment.apps`: how kubectl names a kind in messages and `-o name`.
pub fn kind_name(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.singular.to_string()
    } else {
        format!("{}.{}", info.singular, info.group)
    }
}

/// The namespace a request about `info` goes to: none for cluster-scoped kinds and for
/// `--all-namespaces`, else the flag's or `default`.
pub fn namespace(info: &ResourceInfo, flag: Option<&str>, all: bool) -> Option<String> {
    if !info.namespaced || all {
        return None;
    }
    Some(flag.unwrap_or("default").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_forms_kubectl_accepts() {
        let t = parse(&args(&["po", "a", "b"])).expect("parses");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].info.kind, "Pod");
        assert_eq!(t[0].names, ["a", "b"]);

        let t = parse(&args(&["deploy,svc"])).expect("parses");
        assert_eq!(
            t.iter().map(|t| t.info.kind).collect::<Vec<_>>(),
            ["Deployment", "Service"]
        );

        let t = parse(&args(&["pod/a", "svc/b", "pods/c"])).expect("parses");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].names, ["a", "c"]);
        assert_eq!(t[1].names, ["b"]);

        assert!(parse(&args(&["pod/a", "b"])).is_err());
        assert!(parse(&args(&["pods,svc", "x"])).is_err());
        let err = parse(&args(&["widgets"])).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "error: the server doesn't have a resource type \"widgets\""
        );
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn names_and_namespaces() {
        let deploy = resolve("deployments.apps").expect("deploy");
        assert_eq!(kind_name(deploy), "deployment.apps");
        let node = resolve("no").expect("node");
        assert_eq!(kind_name(node), "node");
        assert_eq!(namespace(node, Some("x"), false), None);
        assert_eq!(namespace(deploy, None, false).as_deref(), Some("default"));
        assert_eq!(namespace(deploy, Some("x"), false).as_deref(), Some("x"));
        assert_eq!(namespace(deploy, Some("x"), true), None);
    }
}
