//! Host matching: exact hosts, `*.example.com` wildcards (exactly one extra DNS label), and the
//! host-less rule that matches everything.

/// A rule's (or a TLS entry's) host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    Exact(String),
    /// `*.foo.com` stored as `.foo.com`.
    Wildcard(String),
    Any,
}

impl HostPattern {
    pub fn parse(host: Option<&str>) -> HostPattern {
        match host.map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase()) {
            None => HostPattern::Any,
            Some(h) if h.is_empty() => HostPattern::Any,
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => HostPattern::Wildcard(suffix.to_string()),
                None => HostPattern::Exact(h),
            },
        }
    }

    /// `host` must already be normalised by [`normalize_host`].
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            HostPattern::Any => true,
        }
    }

    /// Exact hosts beat wildcards beat the host-less rule; a longer wildcard beats a shorter one.
    pub fn precedence(&self) -> (u8, std::cmp::Reverse<usize>) {
        match self {
            HostPattern::Exact(_) => (0, std::cmp::Reverse(0)),
            HostPattern::Wildcard(s) => (1, std::cmp::Reverse(s.len())),
            HostPattern::Any => (2, std::cmp::Reverse(0)),
        }
    }
}

/// The host of a request (`Host` header or `:authority`, or the TLS SNI name): lower case, without
/// port and trailing dot. IPv6 literals keep their brackets.
pub fn normalize_host(raw: &str) -> String {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}
