//! agnhost `grpc-health-checking`: the server of Kubernetes' gRPC-probe example
//! (kubernetes.io "gRPC container probes"). It serves `grpc.health.v1.Health` on `--port`
//! (5000) and, on `--http-port` (8080), `/make-serving` and `/make-not-serving` to flip the
//! status it reports. `--service` names the one service it knows (default ""; any other is
//! NOT_FOUND "unknown service", as the real image answers); `--delay-unhealthy-sec N` turns it
//! NOT_SERVING N seconds after the start (-1, the default: never).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures::Stream;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use super::{bind, pod_ip, serve_until_stopped, stopped};
use crate::grpc_health::health_check_response::ServingStatus;
use crate::grpc_health::health_server::{Health, HealthServer};
use crate::grpc_health::{HealthCheckRequest, HealthCheckResponse};

/// The status the server reports, shared by the gRPC service and the HTTP switches.
#[derive(Clone)]
pub struct Checker {
    service: Arc<str>,
    status: watch::Sender<ServingStatus>,
}

impl Checker {
    fn known(&self, request: &HealthCheckRequest) -> Result<(), Status> {
        if request.service == *self.service {
            Ok(())
        } else {
            Err(Status::not_found("unknown service"))
        }
    }
}

/// The `grpc.health.v1.Health` service knowing `service` and reporting what `status` holds.
pub fn health_server(service: &str, status: watch::Sender<ServingStatus>) -> HealthServer<Checker> {
    HealthServer::new(Checker {
        service: service.into(),
        status,
    })
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for Checker {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.known(request.get_ref())?;
        let status = *self.status.borrow();
        Ok(Response::new(HealthCheckResponse {
            status: status.into(),
        }))
    }

    type WatchStream = StatusStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<StatusStream>, Status> {
        self.known(request.get_ref())?;
        let updates = WatchStream::new(self.status.subscribe())
            .map(|s| Ok(HealthCheckResponse { status: s.into() }));
        Ok(Response::new(Box::pin(updates)))
    }
}

/// Runs the subcommand until the pod is stopped; the exit code.
pub async fn main(named: &HashMap<String, String>) -> i32 {
    let port = |key: &str, default: u16| {
        named
            .get(key)
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(default)
    };
    let (grpc_port, http_port) = (port("port", 5000), port("http-port", 8080));
    let status = watch::Sender::new(ServingStatus::Serving);
    let service = named.get("service").cloned().unwrap_or_default();
    let (grpc_listener, http_listener) = match (bind(grpc_port).await, bind(http_port).await) {
        (Ok(g), Ok(h)) => (g, h),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Some(delay) = named
        .get("delay-unhealthy-sec")
        .and_then(|d| d.parse::<i64>().ok())
        .and_then(|d| u64::try_from(d).ok())
    {
        let status = status.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            eprintln!("becoming NOT_SERVING after {delay}s (--delay-unhealthy-sec)");
            status.send_replace(ServingStatus::NotServing);
        });
    }
    let switch = |to: ServingStatus| {
        let status = status.clone();
        move || async move {
            status.send_replace(to);
            format!("{}\n", to.as_str_name())
        }
    };
    let router = Router::new()
        .route("/make-serving", get(switch(ServingStatus::Serving)))
        .route("/make-not-serving", get(switch(ServingStatus::NotServing)));
    eprintln!(
        "grpc-health-checking: gRPC health on {ip}:{grpc_port}, HTTP switches on {ip}:{http_port}",
        ip = pod_ip()
    );
    let grpc = tonic::transport::Server::builder()
        .add_service(health_server(&service, status.clone()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            stopped(),
        );
    tokio::select! {
        code = serve_until_stopped(http_listener, router) => code,
        served = grpc => match served {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("gRPC server error: {e}");
                1
            }
        },
    }
}
