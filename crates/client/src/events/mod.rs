//! The events recorder: core/v1 Events about objects, written the way client-go's
//! `record.EventRecorder` writes them — repeats of one event become one Event whose `count` and
//! `lastTimestamp` go up, similar events are combined, floods are limited (see [`correlator`]).
//! This is what `kubectl describe` and `kubectl get events` show.
//!
//! ```no_run
//! # async fn demo(client: niwa_client::Client, pod: niwa_client::k8s::api::core::v1::Pod)
//! # -> Result<(), niwa_client::Error> {
//! use niwa_client::ResourceExt;
//! use niwa_client::events::{EventType, Recorder};
//!
//! let recorder = Recorder::new(client, "default-scheduler", None);
//! recorder
//!     .publish(&pod.object_reference(), EventType::Normal, "Scheduled", "assigned default/web to n1")
//!     .await?;
//! # Ok(()) }
//! ```

pub mod correlator;

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

use crate::api::Api;
use crate::client::Client;
use crate::error::Result;
use crate::params::Patch;
use correlator::{Correlator, Decision};

/// `type` of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Writes Events on behalf of one component (`source.component`) on one host. Cheap to clone;
/// clones share the correlation state.
#[derive(Clone)]
pub struct Recorder {
    events: Api<Event>,
    component: String,
    host: Option<String>,
    correlator: Arc<Mutex<Correlator>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("component", &self.component)
            .field("host", &self.host)
            .finish()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str, host: Option<&str>) -> Recorder {
        Recorder {
            events: client.all::<Event>(),
            component: component.to_string(),
            host: host.map(str::to_string),
            correlator: Arc::new(Mutex::new(Correlator::new())),
        }
    }

    /// The Event a first occurrence creates: named `<object>.<hex nanoseconds>` in the object's
    /// namespace (`default` for cluster-scoped objects), as client-go names them.
    fn make_event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Event {
        let now = Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let object = regarding.name.clone().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: regarding.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: self.host.clone(),
            ..Event::default()
        }
    }

    /// Records that `reason` happened to the object `regarding`.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let event = self.make_event(regarding, type_, reason, message);
        let decision = self.correlator.lock().observe(event, Instant::now());
        match decision {
            Decision::Drop => {
                tracing::debug!(reason, "event dropped by the spam filter");
                Ok(())
            }
            Decision::Create(event) => self.create(&event).await,
            Decision::Patch {
                namespace,
                name,
                count,
                last_timestamp,
                message,
                event,
            } => {
                let patch = Patch::Merge(json!({
                    "count": count,
                    "lastTimestamp": last_timestamp,
                    "message": message,
                }));
                match self
                    .events
                    .in_namespace(&namespace)
                    .patch(&name, &patch)
                    .await
                {
                    Ok(_) => Ok(()),
                    // The Event expired or was deleted: write it anew, keeping its count.
                    Err(err) if err.is_not_found() => self.create(&event).await,
                    Err(err) => Err(err),
                }
            }
        }
    }

    async fn create(&self, event: &Event) -> Result<()> {
        match self.events.create(event).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_already_exists() => Ok(()),
            Err(err) => Err(err),
        }
    }
}
