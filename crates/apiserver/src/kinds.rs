//! Per-kind facts the generic REST layer needs beyond `niwa_api::kinds` (which defaults and
//! validates each kind): status separation and generation tracking.

use niwa_api::ResourceInfo;
use serde_json::Value;

/// Whether status is separated from the main resource (a `status` subresource exists): then
/// updates keep the stored status and status updates keep everything else.
pub fn has_status_subresource(info: &ResourceInfo) -> bool {
    info.has_subresource("status")
}

/// Kinds whose objects carry `metadata.generation` (those with a spec that controllers observe).
pub fn tracks_generation(obj: &Value) -> bool {
    obj.get("spec").is_some()
}
