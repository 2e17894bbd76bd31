//! Leader election on `coordination.k8s.io/v1` Leases, as client-go's `leaderelection` does it,
//! so that of several replicas of a controller-manager or scheduler exactly one works at a time.
//!
//! A candidate tries every `retry_period` (with jitter) to create the Lease or take it over once
//! it has not changed for `lease_duration`. The leader renews every `retry_period`; if it cannot
//! renew for `renew_deadline` it stops leading (its work is cancelled) and becomes a candidate
//! again. On shutdown the leader releases the Lease so a standby takes over at once rather than
//! after `lease_duration`. The decisions are the IO-free [`decision`] module.
//!
//! ```no_run
//! # async fn demo(client: niwa_client::Client) -> Result<(), niwa_client::leader::LeaderError> {
//! use niwa_client::leader::{LeaderConfig, LeaderElector};
//! use tokio_util::sync::CancellationToken;
//!
//! let shutdown = CancellationToken::new();
//! let config = LeaderConfig::new("kube-system", "niwa-scheduler", "host-1_4f2a");
//! LeaderElector::new(client, config)
//!     .run(shutdown, |leading: CancellationToken| async move {
//!         // Work until `leading` is cancelled (leadership lost, or shutdown).
//!         leading.cancelled().await;
//!     })
//!     .await
//! # }
//! ```

pub mod decision;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::{Timestamp, Unit};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::client::Client;
use crate::error::Error;
use decision::{Decision, Observation, Record};

/// Which Lease, who we are, and the timing (client-go's defaults: 15 s / 10 s / 2 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per replica (client-go uses `hostname_uuid`).
    pub identity: String,
    /// How long a lease is respected without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Time between attempts.
    pub retry_period: Duration,
}

impl LeaderConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> LeaderConfig {
        LeaderConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// client-go's rules: lease_duration > renew_deadline > 1.2 × retry_period, all positive,
    /// and a non-empty identity.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |reason: &str| Err(LeaderError::InvalidConfig(reason.to_string()));
        if self.identity.is_empty() {
            return bad("identity must not be empty");
        }
        if self.name.is_empty() || self.namespace.is_empty() {
            return bad("the Lease needs a namespace and a name");
        }
        if self.lease_duration <= self.renew_deadline {
            return bad("lease_duration must be greater than renew_deadline");
        }
        if self.renew_deadline <= self.retry_period.mul_f64(1.2) {
            return bad("renew_deadline must be greater than 1.2 × retry_period");
        }
        if self.retry_period.is_zero() || self.lease_duration.as_secs() < 1 {
            return bad("retry_period must be positive and lease_duration at least 1 s");
        }
        Ok(())
    }
}

/// Why leader election could not run.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid leader election config: {0}")]
    InvalidConfig(String),
}

/// How a term as leader ended.
enum TermEnd {
    Shutdown,
    Lost,
    WorkEnded,
}

/// One candidate for the leadership of one Lease.
pub struct LeaderElector {
    leases: Api<Lease>,
    config: LeaderConfig,
    observed: Mutex<Option<Observation>>,
    leading: Arc<AtomicBool>,
    holder: Mutex<Option<String>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .field("leading", &self.is_leader())
            .finish()
    }
}

/// The wall clock, at the microsecond precision Leases store.
fn wall_now() -> MicroTime {
    let now = Timestamp::now();
    MicroTime(now.round(Unit::Microsecond).unwrap_or(now))
}

fn jittered(period: Duration) -> Duration {
    // client-go's JitterFactor 1.2: wait between 1× and 2.2× the period.
    period.mul_f64(1.0 + rand::random::<f64>() * 1.2)
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaderConfig) -> LeaderElector {
        let leases = client.namespaced::<Lease>(&config.namespace);
        LeaderElector {
            leases,
            config,
            observed: Mutex::new(None),
            leading: Arc::new(AtomicBool::new(false)),
            holder: Mutex::new(None),
        }
    }

    /// Whether this candidate leads right now.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// The holder last seen on the Lease.
    pub fn current_holder(&self) -> Option<String> {
        self.holder.lock().clone()
    }

    /// Campaigns until `shutdown`; each time it becomes leader it runs `lead(token)`, whose
    /// token is cancelled when leadership is lost (the closure should then stop working
    /// promptly) or on shutdown. If `lead`'s future ends by itself, the leader steps down and
    /// `run` returns. Failures to reach the apiserver are logged and retried.
    pub async fn run<F, Fut>(
        &self,
        shutdown: CancellationToken,
        mut lead: F,
    ) -> Result<(), LeaderError>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.config.validate()?;
        loop {
            if !self.acquire(&shutdown).await {
                return Ok(());
            }
            tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
            self.leading.store(true, Ordering::SeqCst);
            let token = shutdown.child_token();
            let mut work = tokio::spawn(lead(token.clone()));
            let end = self.renew(&shutdown, &mut work).await;
            token.cancel();
            if !matches!(end, TermEnd::WorkEnded) {
                let _ = work.await;
            }
            self.leading.store(false, Ordering::SeqCst);
            match end {
                TermEnd::Lost => {
                    tracing::warn!(lease = %self.config.name, identity = %self.config.identity,
                        "lost leadership: could not renew within the renew deadline");
                }
                TermEnd::Shutdown | TermEnd::WorkEnded => {
                    self.release().await;
                    return Ok(());
                }
            }
        }
    }

    /// Tries until it leads (`true`) or `shutdown` fires (`false`).
    async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(lease = %self.config.name, %err, "leader election attempt failed")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(jittered(self.config.retry_period)) => {}
            }
        }
    }

    /// Renews every `retry_period` until a renewal deadline is missed, shutdown, or the work
    /// ends.
    async fn renew(
        &self,
        shutdown: &CancellationToken,
        work: &mut tokio::task::JoinHandle<()>,
    ) -> TermEnd {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return TermEnd::Shutdown,
                _ = &mut *work => return TermEnd::WorkEnded,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
            let remaining = self
                .config
                .renew_deadline
                .saturating_sub(last_renewed.elapsed())
                .max(Duration::from_millis(1));
            let renewed = tokio::select! {
                _ = shutdown.cancelled() => return TermEnd::Shutdown,
                r = tokio::time::timeout(remaining, self.try_acquire_or_renew()) => r,
            };
            match renewed {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(lease = %self.config.name, %err, "lease renewal failed")
                }
                Err(_) => tracing::warn!(lease = %self.config.name, "lease renewal timed out"),
            }
            if last_renewed.elapsed() >= self.config.renew_deadline {
                return TermEnd::Lost;
            }
        }
    }

    /// One round of client-go's `tryAcquireOrRenew`: `true` if we hold the lease afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let lease = self.leases.get_opt(&self.config.name).await?;
        let current = lease
            .as_ref()
            .map(|l| Record::from_spec(&l.spec.clone().unwrap_or_default()));
        let decision = {
            let mut observed = self.observed.lock();
            decision::decide(
                &self.config.identity,
                self.config.lease_duration,
                current,
                &mut observed,
                Instant::now(),
                wall_now(),
            )
        };
        let result = match decision {
            Decision::HeldBy(holder) => {
                *self.holder.lock() = Some(holder);
                return Ok(false);
            }
            Decision::Create(record) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(record.to_spec()),
                };
                self.leases.create(&lease).await.map(|_| record)
            }
            Decision::Update(record) => {
                let mut lease = lease.unwrap_or_default();
                lease.spec = Some(record.to_spec());
                self.leases.replace(&lease).await.map(|_| record)
            }
        };
        match result {
            Ok(record) => {
                *self.holder.lock() = Some(record.holder.clone());
                *self.observed.lock() = Some(Observation {
                    record,
                    at: Instant::now(),
                });
                Ok(true)
            }
            // Someone else wrote first: not ours this round.
            Err(err) if err.is_conflict() || err.is_already_exists() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the lease up if we still hold it (best effort, bounded by `retry_period`).
    async fn release(&self) {
        let attempt = async {
            let Some(mut lease) = self.leases.get_opt(&self.config.name).await? else {
                return Ok::<(), Error>(());
            };
            let record = Record::from_spec(&lease.spec.clone().unwrap_or_default());
            if record.holder != self.config.identity {
                return Ok(());
            }
            lease.spec = Some(decision::released(&record, wall_now()).to_spec());
            self.leases.replace(&lease).await?;
            tracing::info!(lease = %self.config.name, identity = %self.config.identity, "released leadership");
            Ok(())
        };
        match tokio::time::timeout(
            self.config.retry_period.max(Duration::from_secs(1)),
            attempt,
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(lease = %self.config.name, %err, "releasing the lease failed")
            }
            Err(_) => tracing::warn!(lease = %self.config.name, "releasing the lease timed out"),
        }
    }
}
