//! The `--controllers` flag, with kube-controller-manager's syntax: a comma-separated list where `*`
//! enables every controller that is on by default, `name` enables one and `-name` disables one
//! (`*,-job-controller,bootstrapsigner-controller`). Names may be given with or without the
//! `-controller` suffix (`job` = `job-controller`), as Kubernetes accepts both.

use std::collections::BTreeSet;

/// What the controller list knows about one controller.
#[derive(Debug, Clone, Copy)]
pub struct ControllerName {
    /// Canonical name (`replicaset-controller`).
    pub name: &'static str,
    /// Short alias accepted on the command line (`replicaset`).
    pub alias: &'static str,
    /// Whether `*` enables it.
    pub enabled_by_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("{0:?} is not in the list of known controllers")]
    Unknown(String),
    #[error("--controllers: empty entry")]
    Empty,
}

/// Resolve the flag's entries against the known controllers; returns the enabled canonical names.
pub fn select(
    known: &[ControllerName],
    entries: &[String],
) -> Result<BTreeSet<&'static str>, SelectionError> {
    let lookup = |n: &str| {
        known
            .iter()
            .find(|c| c.name == n || c.alias == n || c.name.strip_suffix("-controller") == Some(n))
            .map(|c| c.name)
            .ok_or_else(|| SelectionError::Unknown(n.to_string()))
    };
    let mut star = false;
    let mut on = BTreeSet::new();
    let mut off = BTreeSet::new();
    for raw in entries {
        let entry = raw.trim();
        match entry {
            "" => return Err(SelectionError::Empty),
            "*" => star = true,
            _ => match entry.strip_prefix('-') {
                Some(name) => {
                    off.insert(lookup(name)?);
                }
                None => {
                    on.insert(lookup(entry)?);
                }
            },
        }
    }
    let mut enabled: BTreeSet<&'static str> = on;
    if star {
        enabled.extend(
            known
                .iter()
                .filter(|c| c.enabled_by_default)
                .map(|c| c.name),
        );
    }
    Ok(enabled.into_iter().filter(|n| !off.contains(n)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[ControllerName] = &[
        ControllerName {
            name: "job-controller",
            alias: "job",
            enabled_by_default: true,
        },
        ControllerName {
            name: "cronjob-controller",
            alias: "cronjob",
            enabled_by_default: true,
        },
        ControllerName {
            name: "foo-controller",
            alias: "foo",
            enabled_by_default: false,
        },
    ];

    fn sel(s: &str) -> Result<Vec<&'static str>, SelectionError> {
        let entries: Vec<String> = s.split(',').map(String::from).collect();
        select(KNOWN, &entries).map(|s| s.into_iter().collect())
    }

    #[test]
    fn kubernetes_syntax() {
        assert_eq!(sel("*"), Ok(vec!["cronjob-controller", "job-controller"]));
        assert_eq!(
            sel("*,-job,foo"),
            Ok(vec!["cronjob-controller", "foo-controller"])
        );
        assert_eq!(sel("job-controller"), Ok(vec!["job-controller"]));
        assert_eq!(sel("-job"), Ok(vec![]));
        assert_eq!(sel("*,bar"), Err(SelectionError::Unknown("bar".into())));
        assert_eq!(sel("*,,job"), Err(SelectionError::Empty));
    }
}
