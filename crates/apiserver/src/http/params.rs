//! The query parameters of resource requests (`metav1.ListOptions`, `CreateOptions`,
//! `PatchOptions`, `DeleteOptions`, `PodLogOptions`), parsed once, with Kubernetes' errors for
//! malformed values.

use niwa_api::ApiError;

/// Every query parameter niwa reads; absent ones are `None`.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub watch: bool,
    pub label_selector: String,
    pub field_selector: String,
    pub limit: i64,
    pub continue_token: String,
    pub resource_version: String,
    pub resource_version_match: String,
    pub allow_watch_bookmarks: bool,
    pub timeout_seconds: Option<u64>,
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: Option<String>,
    pub force: bool,
    pub propagation_policy: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub orphan_dependents: Option<bool>,
    /// `None`, `Metadata` (the default) or `Object`: what Table rows carry.
    pub include_object: String,
    pub container: String,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: String,
    pub limit_bytes: Option<i64>,
}

fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "" | "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid value for {name}: strconv.ParseBool: parsing {v:?}: invalid syntax"
        ))),
    }
}

fn int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid value for {name}: strconv.ParseInt: parsing {v:?}: invalid syntax"
        ))
    })
}

impl Params {
    /// Parses a raw query string (`a=b&c=d`, URL-encoded).
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let mut p = Params::default();
        let Some(query) = query else {
            return Ok(p);
        };
        let pairs: Vec<(String, String)> =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
                &format!("/?{query}")
                    .parse()
                    .map_err(|_| ApiError::bad_request("malformed query string"))?,
            )
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?
            .0;
        for (k, v) in pairs {
            match k.as_str() {
                "watch" => p.watch = boolean(&k, &v)?,
                "labelSelector" => p.label_selector = v,
                "fieldSelector" => p.field_selector = v,
                "limit" => p.limit = int(&k, &v)?,
                "continue" => p.continue_token = v,
                "resourceVersion" => p.resource_version = v,
                "resourceVersionMatch" => p.resource_version_match = v,
                "allowWatchBookmarks" => p.allow_watch_bookmarks = boolean(&k, &v)?,
                "timeoutSeconds" => p.timeout_seconds = Some(int(&k, &v)?.max(0) as u64),
                "dryRun" => match v.as_str() {
                    "All" => p.dry_run = true,
                    "" => {}
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid dry run value: {other:?}: supported values: \"All\""
                        )));
                    }
                },
                "fieldManager" => p.field_manager = v,
                "fieldValidation" => p.field_validation = Some(v),
                "force" => p.force = boolean(&k, &v)?,
                "propagationPolicy" => p.propagation_policy = Some(v),
                "gracePeriodSeconds" => p.grace_period_seconds = Some(int(&k, &v)?),
                "orphanDependents" => p.orphan_dependents = Some(boolean(&k, &v)?),
                "includeObject" => p.include_object = v,
                "container" => p.container = v,
                "follow" => p.follow = boolean(&k, &v)?,
                "tailLines" => p.tail_lines = Some(int(&k, &v)?),
                "previous" => p.previous = boolean(&k, &v)?,
                "timestamps" => p.timestamps = boolean(&k, &v)?,
                "sinceSeconds" => p.since_seconds = Some(int(&k, &v)?),
                "sinceTime" => p.since_time = v,
                "limitBytes" => p.limit_bytes = Some(int(&k, &v)?),
                _ => {}
            }
        }
        Ok(p)
    }

    /// The field validation directive; Kubernetes defaults to `Warn`.
    pub fn validation(&self) -> Result<Validation, ApiError> {
        match self.field_validation.as_deref() {
            None | Some("") | Some("Warn") => Ok(Validation::Warn),
            Some("Strict") => Ok(Validation::Strict),
            Some("Ignore") => Ok(Validation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation directive {other:?} is not supported: valid values are \"Ignore\", \"Warn\" and \"Strict\""
            ))),
        }
    }
}

/// `fieldValidation`: what to do about unknown and duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    Ignore,
    Warn,
    Strict,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_queries() {
        let p = Params::parse(Some(
            "labelSelector=app%3Dnginx&limit=500&watch=true&resourceVersion=12&fieldValidation=Strict&dryRun=All",
        ))
        .unwrap_or_default();
        assert_eq!(p.label_selector, "app=nginx");
        assert_eq!(p.limit, 500);
        assert!(p.watch && p.dry_run);
        assert_eq!(p.resource_version, "12");
        assert_eq!(p.validation().ok(), Some(Validation::Strict));
        assert!(Params::parse(Some("limit=x")).is_err());
        assert!(Params::parse(Some("dryRun=Some")).is_err());
        assert_eq!(
            Params::parse(None).unwrap_or_default().validation().ok(),
            Some(Validation::Warn)
        );
    }
}
