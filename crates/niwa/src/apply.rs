//! `niwa apply -f FILE|DIR|- [-R] [-n NS] [--dry-run]`: create what does not exist, update what
//! does, the way `kubectl apply` (client-side) does it:
//!
//! * each object carries the annotation `kubectl.kubernetes.io/last-applied-configuration`
//!   (the manifest as last applied);
//! * an update is a JSON merge patch from a three-way comparison: fields the manifest sets that
//!   differ from the live object are set, fields that were in the last applied manifest and are
//!   not any more are removed (`null`), and fields nobody applied (server defaults, other
//!   writers' changes, status) are left alone;
//! * an object whose patch would change nothing is reported `unchanged` and not written.
//!
//! A list in the patch replaces the live list (JSON merge patch), but it is computed like
//! kubectl's strategic merge: elements are matched by their merge key (`name`, `port`,
//! `containerPort`, `mountPath`, ...) and keep the fields the manifest does not set (defaults, a
//! Service port's allocated nodePort). A list whose elements already contain everything the
//! manifest says is left alone.

use std::io::{Read, Write};

use niwa_api::Registry;
use niwa_client::Patch;
use serde_json::{Map, Value, json};

use crate::manifest::{self, Document};
use crate::target;
use crate::{CliError, Context};

/// The annotation kubectl keeps the last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Files, directories (their .yaml/.yml/.json files) or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Namespace for objects that name none (default: `default`); objects naming another fail.
    #[arg(short = 'n', long, env = "NIWA_NAMESPACE")]
    pub namespace: Option<String>,
    /// Validate and default on the server without storing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

pub async fn run(
    ctx: &Context,
    args: ApplyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let mut stdin = std::io::stdin();
    let docs = manifest::read(&args.files, args.recursive, &mut stdin as &mut dyn Read)?;
    let mut failures = 0;
    for doc in docs {
        match apply_one(ctx, &args, &doc, err).await {
            Ok((name, outcome)) => {
                let suffix = if args.dry_run {
                    " (server dry run)"
                } else {
                    ""
                };
                let _ = writeln!(out, "{name} {}{suffix}", outcome.as_str());
            }
            Err(message) => {
                failures += 1;
                let _ = writeln!(err, "{message}");
            }
        }
    }
    if failures > 0 {
        return Err(CliError::Failed(format!("{failures} objects failed")));
    }
    Ok(())
}

/// Applies one object; `Err` is the message to print.
async fn apply_one(
    ctx: &Context,
    args: &ApplyArgs,
    doc: &Document,
    err: &mut dyn Write,
) -> Result<(String, Outcome), String> {
    let obj = &doc.object;
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let info = Registry.by_kind(api_version, kind).ok_or_else(|| {
        format!(
            "error: resource mapping not found for name: {name:?} namespace: {:?} from {:?}: \
             no matches for kind {kind:?} in version {api_version:?}",
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            doc.source
        )
    })?;
    if name.is_empty() {
        return Err(format!(
            "error: error when retrieving current configuration of {kind} from {:?}: \
             metadata.name is required (apply does not support generateName)",
            doc.source
        ));
    }
    let display = format!("{}/{name}", target::kind_name(info));

    let mut modified = obj.clone();
    let namespace = if info.namespaced {
        let own = obj["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty());
        let ns = match (own, args.namespace.as_deref()) {
            (Some(own), Some(flag)) if own != flag => {
                return Err(format!(
                    "error: the namespace from the provided object {own:?} does not match the \
                     namespace {flag:?}. You must pass '--namespace={own}' to perform this operation."
                ));
            }
            (Some(own), _) => own.to_string(),
            (None, Some(flag)) => flag.to_string(),
            (None, None) => "default".to_string(),
        };
        modified["metadata"]["namespace"] = json!(ns);
        Some(ns)
    } else {
        None
    };
    let mut api = ctx.client.dynamic_for(info, namespace.as_deref());
    if args.dry_run {
        api = api.dry_run();
    }
    let api = api.field_manager("niwa-client-side-apply");

    // The annotation holds the manifest without the annotation itself.
    remove_last_applied(&mut modified);
    let last_applied = serde_json::to_string(&modified).map_err(|e| format!("error: {e}"))?;
    let mut desired = modified.clone();
    set_annotation(&mut desired, LAST_APPLIED, &last_applied);

    let failed = |verb: &str, e: &niwa_client::Error| match e {
        niwa_client::Error::Api(status) => format!(
            "Error from server ({}): error when {verb} {:?}: {}",
            status.reason.as_str(),
            doc.source,
            status.message
        ),
        other => ctx.describe(other),
    };
    let current = api
        .get_opt(&name)
        .await
        .map_err(|e| failed("retrieving current configuration of", &e))?;
    let Some(current) = current else {
        api.create(&desired)
            .await
            .map_err(|e| failed("creating", &e))?;
        return Ok((display, Outcome::Created));
    };

    let original = match current["metadata"]["annotations"][LAST_APPLIED].as_str() {
        Some(text) => serde_json::from_str(text).unwrap_or(Value::Object(Map::new())),
        None => {
            let _ = writeln!(
                err,
                "Warning: resource {} is missing the {LAST_APPLIED} annotation which is required \
                 by niwa apply. The missing annotation will be patched automatically.",
                info.plural
            );
            Value::Object(Map::new())
        }
    };
    let patch = three_way_patch(&original, &desired, &current);
    if patch.as_object().is_none_or(Map::is_empty) {
        return Ok((display, Outcome::Unchanged));
    }
    api.patch(&name, &Patch::Merge(patch))
        .await
        .map_err(|e| failed("patching", &e))?;
    Ok((display, Outcome::Configured))
}

fn remove_last_applied(obj: &mut Value) {
    if let Some(annotations) = obj["metadata"]["annotations"].as_object_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty()
            && let Some(md) = obj["metadata"].as_object_mut()
        {
            md.remove("annotations");
        }
    }
}

fn set_annotation(obj: &mut Value, key: &str, value: &str) {
    let md = &mut obj["metadata"];
    if !md["annotations"].is_object() {
        md["annotations"] = json!({});
    }
    md["annotations"][key] = json!(value);
}

/// The JSON merge patch that takes `current` to what `modified` asks for, deleting what
/// `original` (the last applied manifest) had and `modified` no longer has. IO-free.
pub fn three_way_patch(original: &Value, modified: &Value, current: &Value) -> Value {
    let mut patch = Map::new();
    let empty = Map::new();
    let orig = original.as_object().unwrap_or(&empty);
    let cur = current.as_object().unwrap_or(&empty);
    let Some(modi) = modified.as_object() else {
        return Value::Object(patch);
    };
    // Deletions: applied before, dropped from the manifest now, still present.
    for key in orig.keys() {
        if !modi.contains_key(key) && cur.get(key).is_some_and(|v| !v.is_null()) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    // Additions and changes.
    for (key, want) in modi {
        let have = cur.get(key);
        match (want, have) {
            (Value::Object(_), Some(have @ Value::Object(_))) => {
                let sub = three_way_patch(orig.get(key).unwrap_or(&Value::Null), want, have);
                if sub.as_object().is_some_and(|m| !m.is_empty()) {
                    patch.insert(key.clone(), sub);
                }
            }
            (Value::Array(want_items), Some(Value::Array(have_items))) => {
                if !contains_list(want_items, have_items) {
                    let orig_items = orig.get(key).and_then(Value::as_array);
                    let merged = merge_list(orig_items.map(Vec::as_slice), want_items, have_items);
                    patch.insert(key.clone(), Value::Array(merged));
                }
            }
            // Anything else replaces whatever is there. A merge patch cannot set null as a
            // value, so null in a manifest is a deletion.
            _ if have == Some(want) => {}
            (Value::Null, None) => {}
            _ => {
                patch.insert(key.clone(), want.clone());
            }
        }
    }
    Value::Object(patch)
}

/// Fields that identify an element of a list of objects (Kubernetes' strategic-merge keys for
/// the lists manifests usually hold: containers, ports, volumes, mounts, env).
const MERGE_KEYS: &[&[&str]] = &[
    &["name"],
    &["containerPort", "protocol"],
    &["port", "protocol"],
    &["mountPath"],
    &["devicePath"],
    &["ip"],
];

/// The merge key of a list: the first whose leading field every element has.
fn merge_key(items: &[Value]) -> Option<&'static [&'static str]> {
    MERGE_KEYS
        .iter()
        .copied()
        .find(|key| !items.is_empty() && items.iter().all(|i| i.get(key[0]).is_some()))
}

/// An element's identity under `key`; a missing protocol is TCP, as the server defaults it.
fn identity(item: &Value, key: &[&str]) -> Vec<Value> {
    key.iter()
        .map(|field| match (item.get(*field), *field) {
            (None, "protocol") => json!("TCP"),
            (v, _) => v.cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// Whether everything `want` says is already so in `have` (fields only `have` has — server
/// defaults, allocated values — do not count).
fn contains(want: &Value, have: Option<&Value>) -> bool {
    match (want, have) {
        (Value::Null, None | Some(Value::Null)) => true,
        (Value::Object(w), Some(Value::Object(h))) => w.iter().all(|(k, v)| contains(v, h.get(k))),
        (Value::Array(w), Some(Value::Array(h))) => contains_list(w, h),
        (w, Some(h)) => w == h,
        (_, None) => false,
    }
}

fn contains_list(want: &[Value], have: &[Value]) -> bool {
    if want.len() != have.len() {
        return false;
    }
    match merge_key(want) {
        Some(key) if want.iter().all(Value::is_object) => want.iter().all(|w| {
            let id = identity(w, key);
            have.iter()
                .any(|h| identity(h, key) == id && contains(w, Some(h)))
        }),
        _ => want.iter().zip(have).all(|(w, h)| contains(w, Some(h))),
    }
}

/// The list `want` asks for, keeping — in elements that exist already (same merge key) — the
/// fields nobody applied (a Service port's allocated nodePort, defaults), as kubectl's strategic
/// merge does. Lists without a merge key are taken as they are.
fn merge_list(orig: Option<&[Value]>, want: &[Value], have: &[Value]) -> Vec<Value> {
    let Some(key) = merge_key(want).filter(|_| want.iter().all(Value::is_object)) else {
        return want.to_vec();
    };
    want.iter()
        .map(|w| {
            let id = identity(w, key);
            let Some(h) = have.iter().find(|h| identity(h, key) == id) else {
                return w.clone();
            };
            let o = orig
                .and_then(|o| o.iter().find(|o| identity(o, key) == id))
                .cloned()
                .unwrap_or(Value::Null);
            let mut merged = h.clone();
            apply_merge_patch(&mut merged, &three_way_patch(&o, w, h));
            merged
        })
        .collect()
}

/// RFC 7386: applies a JSON merge patch to `target`.
fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                apply_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_field_is_set_and_a_dropped_one_removed() {
        let original = json!({"metadata": {"name": "a", "labels": {"x": "1", "old": "y"}}, "data": {"k": "1", "gone": "z"}});
        let modified = json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "data": {"k": "1"}});
        let current = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "old": "y", "theirs": "t"}},
                             "data": {"k": "1", "gone": "z"}});
        assert_eq!(
            three_way_patch(&original, &modified, &current),
            json!({"metadata": {"labels": {"x": "2", "old": null}}, "data": {"gone": null}})
        );
    }

    #[test]
    fn server_and_foreign_fields_are_left_alone() {
        let manifest = json!({"spec": {"replicas": 2}});
        let current = json!({"spec": {"replicas": 2, "strategy": {"type": "RollingUpdate"}},
                             "status": {"readyReplicas": 1}});
        assert_eq!(three_way_patch(&manifest, &manifest, &current), json!({}));
        // A field someone else changed comes back to what the manifest says.
        let drifted = json!({"spec": {"replicas": 5}});
        assert_eq!(
            three_way_patch(&manifest, &manifest, &drifted),
            json!({"spec": {"replicas": 2}})
        );
    }

    #[test]
    fn list_elements_keep_what_the_server_filled_in() {
        let manifest = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let live = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]}});
        assert_eq!(three_way_patch(&manifest, &manifest, &live), json!({}));
        let changed = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}});
        assert_eq!(
            three_way_patch(&manifest, &changed, &live),
            json!({"spec": {"ports": [
                {"port": 80, "targetPort": 9090, "protocol": "TCP", "nodePort": 30080},
                {"port": 443}]}})
        );
        let containers = json!({"spec": {"containers": [{"name": "a", "image": "x:2"}]}});
        let live = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}});
        assert_eq!(
            three_way_patch(&Value::Null, &containers, &live),
            json!({"spec": {"containers": [{"name": "a", "image": "x:2", "imagePullPolicy": "IfNotPresent"}]}})
        );
    }

    #[test]
    fn lists_are_replaced_whole() {
        let original = json!({"spec": {"ports": [{"port": 80}]}});
        let modified = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            three_way_patch(&original, &modified, &original),
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}})
        );
    }

    #[test]
    fn without_an_original_nothing_is_deleted() {
        let modified = json!({"data": {"a": "1"}});
        let current = json!({"data": {"a": "0", "b": "2"}});
        assert_eq!(
            three_way_patch(&Value::Null, &modified, &current),
            json!({"data": {"a": "1"}})
        );
    }

    #[test]
    fn the_annotation_is_not_part_of_itself() {
        let mut obj = json!({"metadata": {"name": "a", "annotations": {LAST_APPLIED: "{}"}}});
        remove_last_applied(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "a"}}));
        set_annotation(&mut obj, LAST_APPLIED, "x");
        assert_eq!(obj["metadata"]["annotations"][LAST_APPLIED], "x");
    }
}
