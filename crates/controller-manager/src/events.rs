//! Events, recorded in the background as client-go's broadcaster does: a controller hands an Event
//! to a bounded queue ([`EVENT_QUEUE`]) and goes on; one task writes them (with the client's
//! aggregation of repeats). When the queue is full the Event is dropped, never the controller held up.

use k8s_openapi::api::core::v1::ObjectReference;
use niwa_client::{Client, EventType, Recorder};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Events waiting to be written.
pub const EVENT_QUEUE: usize = 1000;

struct Pending {
    regarding: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// Where controllers send Events.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

impl EventSink {
    pub fn start(
        client: Client,
        component: &str,
        host: Option<&str>,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> EventSink {
        let (tx, mut rx) = mpsc::channel::<Pending>(EVENT_QUEUE);
        let recorder = Recorder::new(client, component, host);
        tasks.spawn(async move {
            loop {
                let p = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    p = rx.recv() => match p { Some(p) => p, None => break },
                };
                if let Err(err) = recorder
                    .publish(&p.regarding, p.type_, &p.reason, &p.message)
                    .await
                {
                    tracing::debug!(%err, reason = p.reason, "could not record an event");
                }
            }
        });
        EventSink { tx }
    }

    /// Record an Event about `regarding` ("Normal" or "Warning").
    pub fn publish(&self, regarding: ObjectReference, type_: &str, reason: &str, message: String) {
        let type_ = if type_ == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let _ = self.tx.try_send(Pending {
            regarding,
            type_,
            reason: reason.to_string(),
            message,
        });
    }
}
