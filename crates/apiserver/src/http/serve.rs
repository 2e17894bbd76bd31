//! One listener for both APIs: HTTP/1.1 and h2 (cleartext, prior knowledge) connections, each
//! request routed by its content-type — `application/grpc…` to the gRPC services, everything
//! else to the Kubernetes REST router. One shutdown path: the token stops accepting, open
//! connections get [`DRAIN_TIMEOUT`] to finish (watches end with the token).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use super::{HttpApi, router};

/// How long open connections may take to finish after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Routes a request to gRPC or REST by its content-type.
#[derive(Clone)]
struct Mux {
    grpc: tonic::service::Routes,
    rest: Router,
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl Service<Request<Incoming>> for Mux {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        if is_grpc(&req) {
            let grpc = self.grpc.clone();
            Box::pin(async move {
                let resp = grpc.oneshot(req).await?;
                Ok(resp.map(Body::new))
            })
        } else {
            let rest = self.rest.clone();
            Box::pin(async move { rest.oneshot(req.map(Body::new)).await })
        }
    }
}

/// Serves `grpc` and the REST API of `api` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    grpc: tonic::service::Routes,
    api: HttpApi,
    shutdown: CancellationToken,
) {
    let mux = Mux {
        grpc,
        rest: router(api),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Many concurrent watches share one connection (client-go multiplexes them over h2).
    builder.http2().max_concurrent_streams(1000);
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(mux.clone()),
            )
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after the drain timeout; closing");
        }
    }
}
