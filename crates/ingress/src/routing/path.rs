//! Path matching for the three `pathType`s, and the rank that decides between several matches.

/// An Ingress path rule's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathType {
    /// The whole path, case-sensitively.
    Exact,
    /// Kubernetes' element-wise prefix: `/foo` matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`;
    /// a trailing `/` in the rule is ignored.
    Prefix,
    /// niwa's choice (as ingress-nginx's without regex annotations): a plain string prefix, so
    /// `/foo` also matches `/foobar`.
    ImplementationSpecific,
}

impl PathType {
    pub fn parse(value: &str) -> Option<PathType> {
        match value {
            "Exact" => Some(PathType::Exact),
            "Prefix" => Some(PathType::Prefix),
            "ImplementationSpecific" => Some(PathType::ImplementationSpecific),
            _ => None,
        }
    }

    /// Among equally long matches, Exact wins over Prefix over ImplementationSpecific.
    fn tie_rank(self) -> u8 {
        match self {
            PathType::Exact => 0,
            PathType::Prefix => 1,
            PathType::ImplementationSpecific => 2,
        }
    }
}

/// One path rule, normalised for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRule {
    pub path_type: PathType,
    /// As written (defaults to `/`).
    pub path: String,
}

impl PathRule {
    pub fn new(path_type: PathType, path: Option<&str>) -> PathRule {
        let path = match path {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => "/".to_string(),
        };
        PathRule { path_type, path }
    }

    /// The part of the rule that is compared: a Prefix rule's trailing slashes do not count.
    fn effective(&self) -> &str {
        match self.path_type {
            PathType::Prefix => self.path.trim_end_matches('/'),
            _ => &self.path,
        }
    }

    pub fn matches(&self, request_path: &str) -> bool {
        match self.path_type {
            PathType::Exact => request_path == self.path,
            PathType::Prefix => {
                let prefix = self.effective();
                prefix.is_empty()
                    || request_path == prefix
                    || request_path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
            PathType::ImplementationSpecific => request_path.starts_with(&self.path),
        }
    }

    /// Sort key: the longest matching path first; among equal lengths Exact, then Prefix, then
    /// ImplementationSpecific (Kubernetes' documented precedence).
    pub fn precedence(&self) -> (std::cmp::Reverse<usize>, u8) {
        (
            std::cmp::Reverse(self.effective().len()),
            self.path_type.tie_rank(),
        )
    }
}
