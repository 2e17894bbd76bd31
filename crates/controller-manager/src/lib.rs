//! # niwa-controller-manager
//!
//! The level-triggered controllers of a niwa cluster (Kubernetes' kube-controller-manager): each
//! watches the apiserver, compares desired with observed state, and writes the difference.
//!
//! Where to start reading:
//! * [`run`] — the daemon: health/metrics server, leader election, shared informers, then every
//!   controller `--controllers` enabled, all under one shutdown token.
//! * [`controllers`] — one directory per controller. Each has an IO-free `core` (the decisions,
//!   golden-tested with an injected clock) and a shell (its `mod.rs`) that feeds it from the watch
//!   caches and performs the writes. [`controllers::CONTROLLERS`] lists them;
//!   [`controllers::selection`] implements the `--controllers` flag.
//! * [`util`] — what the controllers share: pod readiness/availability, owner references and
//!   adoption, expectations, template hashing, ControllerRevisions, node fit.
//! * [`informer`] — one watch and cache per kind shared by all controllers; [`events`] — Events
//!   recorded in the background.

pub mod clock;
pub mod config;
pub mod controllers;
pub mod events;
pub mod health;
pub mod informer;
pub mod owner_index;
pub mod util;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use niwa_client::Client;
use niwa_client::leader::{LeaderConfig, LeaderElector};
use niwa_client::runtime::watcher;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::Config;
use controllers::{CONTROLLERS, Shared};
use events::EventSink;
use health::Health;
use informer::Informer;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--controllers: {0}")]
    Controllers(#[from] controllers::selection::SelectionError),
    #[error("apiserver {0}: {1}")]
    Client(String, niwa_client::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    #[error("leader election: {0}")]
    Leader(#[from] niwa_client::leader::LeaderError),
}

/// Run the controller-manager until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let enabled = controllers::selection::select(CONTROLLERS, &config.controllers)?;
    let client = Client::connect_lazy(&config.apiserver)
        .map_err(|e| RunError::Client(config.apiserver.clone(), e))?;
    let health = Health::default();
    let mut tasks = JoinSet::new();
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| RunError::Listen(addr, e))?;
        let router = health.router();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(err) = served {
                tracing::error!(%err, "health server failed");
            }
        });
    }
    tracing::info!(controllers = ?enabled, apiserver = %config.apiserver, "starting controllers");
    let le = config.leader_election.clone();
    if le.enabled {
        health.ready.store(true, Ordering::Relaxed);
        let mut lc = LeaderConfig::new(&le.namespace, &le.name, &config.identity);
        lc.lease_duration = le.lease_duration;
        lc.renew_deadline = le.renew_deadline;
        lc.retry_period = le.retry_period;
        let elector = LeaderElector::new(client.clone(), lc);
        let result = elector
            .run(shutdown.clone(), |leading| {
                let (client, config, enabled, health) = (
                    client.clone(),
                    config.clone(),
                    enabled.clone(),
                    health.clone(),
                );
                let lease = le.name.clone();
                async move {
                    health.set_leader(&lease, true);
                    run_controllers(client, config, enabled, health.clone(), leading).await;
                    health.set_leader(&lease, false);
                }
            })
            .await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        result?;
    } else {
        run_controllers(client, config, enabled, health, shutdown.clone()).await;
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Start the shared informers and every enabled controller; return once `token` is cancelled and
/// they have all stopped.
async fn run_controllers(
    client: Client,
    config: Config,
    enabled: BTreeSet<&'static str>,
    health: Health,
    token: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    let pods = Informer::start_with_owner_index(
        client.all::<Pod>(),
        watcher::Config::default(),
        &mut tasks,
        token.clone(),
    );
    let nodes = enabled
        .iter()
        .any(|n| controllers::needs_nodes(n))
        .then(|| {
            Informer::start(
                client.cluster::<Node>(),
                watcher::Config::default(),
                &mut tasks,
                token.clone(),
            )
        });
    let services = enabled
        .iter()
        .any(|n| controllers::needs_services(n))
        .then(|| {
            Informer::start(
                client.all::<Service>(),
                watcher::Config::default(),
                &mut tasks,
                token.clone(),
            )
        });
    let host = config.identity.clone();
    for name in enabled {
        let events = EventSink::start(client.clone(), name, Some(&host), &mut tasks, token.clone());
        let shared = Arc::new(Shared {
            client: client.clone(),
            pods: pods.clone(),
            nodes: nodes.clone(),
            services: services.clone(),
            settings: config::Settings::from_config(&config),
            events,
            clock: config.clock.clone(),
            concurrency: config.concurrency.clone(),
        });
        tasks.spawn(
            controllers::start(name, shared, token.clone())
                .instrument(tracing::info_span!("controller", name)),
        );
    }
    let store = pods.store();
    tokio::select! {
        _ = store.wait_until_ready() => health.ready.store(true, Ordering::Relaxed),
        _ = token.cancelled() => {}
    }
    token.cancelled().await;
    while tasks.join_next().await.is_some() {}
}
