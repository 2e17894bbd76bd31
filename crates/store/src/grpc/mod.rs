//! The etcd v3 gRPC services: thin shells that check requests, call the engine and fill headers.
//! Errors become `tonic::Status` only through `From<StoreError>` (error.rs).

mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::pin::Pin;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer,
};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::header::Header;
use crate::metrics::Metrics;
use crate::watch::stream::StreamOptions;

/// The version niwa-store reports in Status: the etcd API level it implements.
pub const ETCD_VERSION: &str = "3.4.23";

/// A boxed response stream, as several traits need one.
pub type BoxStream<T> =
    Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// What every service shares.
#[derive(Clone)]
pub struct Ctx {
    pub engine: Engine,
    pub header: Header,
    pub max_request_bytes: usize,
    pub client_url: String,
    pub name: String,
    pub watch: StreamOptions,
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
}

/// All etcd services of the store, ready to be added to a tonic router.
pub struct Services {
    pub kv: PbKvServer<kv::KvService>,
    pub watch: PbWatchServer<watch::WatchService>,
    pub lease: PbLeaseServer<lease::LeaseService>,
    pub maintenance: PbMaintenanceServer<maintenance::MaintenanceService>,
    pub cluster: PbClusterServer<cluster::ClusterService>,
}

impl Services {
    pub fn new(ctx: Ctx) -> Services {
        // Leave room above the request limit so oversized requests reach our check and get etcd's
        // message instead of a transport error.
        let decode_limit = ctx.max_request_bytes + (512 << 10);
        Services {
            kv: PbKvServer::new(kv::KvService(ctx.clone()))
                .max_decoding_message_size(decode_limit)
                .max_encoding_message_size(usize::MAX),
            watch: PbWatchServer::new(watch::WatchService(ctx.clone()))
                .max_decoding_message_size(decode_limit)
                .max_encoding_message_size(usize::MAX),
            lease: PbLeaseServer::new(lease::LeaseService(ctx.clone())),
            maintenance: PbMaintenanceServer::new(maintenance::MaintenanceService(ctx.clone())),
            cluster: PbClusterServer::new(cluster::ClusterService(ctx)),
        }
    }
}
