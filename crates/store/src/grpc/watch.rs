//! Watch service: each bidi stream runs a [`WatchStream`] task.

use etcd_client::proto::{PbWatchRequest, PbWatchResponse, PbWatchService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{BoxStream, Ctx};
use crate::watch::stream::WatchStream;

pub struct WatchService(pub Ctx);

/// Responses buffered per stream towards the client; when full the stream task waits, and the hub
/// switches the stream to catching up from history.
const RESPONSE_QUEUE: usize = 128;

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = BoxStream<PbWatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        let stream = WatchStream::new(self.0.engine.clone(), self.0.header, tx, self.0.watch);
        let shutdown = self.0.shutdown.clone();
        let requests = request.into_inner();
        self.0.metrics.watch_streams.inc();
        let gauge = self.0.metrics.watch_streams.clone();
        tokio::spawn(async move {
            stream.run(requests, shutdown).await;
            gauge.dec();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
