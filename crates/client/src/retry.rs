//! Retrying optimistic-concurrency conflicts: client-go's `retry.RetryOnConflict`.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::runtime::backoff::Backoff;

/// Attempts before [`on_conflict`] gives up (client-go's `DefaultRetry` has 5 steps; this
/// allows more, since niwa components often race many writers in tests and benchmarks).
pub const CONFLICT_ATTEMPTS: usize = 10;

/// Runs `attempt` (a read-modify-write) again while it fails with 409 Conflict, waiting a
/// short, growing, jittered delay (10 ms doubling to 1 s) between tries. Other errors and
/// the last conflict are returned.
///
/// ```no_run
/// # async fn demo(cms: niwa_client::Api<niwa_client::k8s::api::core::v1::ConfigMap>) -> niwa_client::Result<()> {
/// niwa_client::retry::on_conflict(|| async {
///     let mut cm = cms.get("counter").await?;
///     let n: u64 = cm.data.as_ref().and_then(|d| d.get("n")).and_then(|n| n.parse().ok()).unwrap_or(0);
///     cm.data.get_or_insert_default().insert("n".into(), (n + 1).to_string());
///     cms.replace(&cm).await
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn on_conflict<T, F, Fut>(attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retry_if(CONFLICT_ATTEMPTS, Error::is_conflict, attempt).await
}

/// Runs `attempt` up to `attempts` times while its error satisfies `retry_if`, with the same
/// delays as [`on_conflict`].
pub async fn retry_if<T, F, Fut, P>(attempts: usize, retry_if: P, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
    P: Fn(&Error) -> bool,
{
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(err) if retry_if(&err) && tries < attempts => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::{ApiError, Reason};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn conflicts_are_retried_other_errors_are_not() {
        let calls = AtomicUsize::new(0);
        let out = on_conflict(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                Err(Error::Api(ApiError::new(Reason::Conflict, "stale")))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let calls = AtomicUsize::new(0);
        let out: Result<()> = on_conflict(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Api(ApiError::new(Reason::NotFound, "gone")))
        })
        .await;
        assert!(out.is_err_and(|e| e.is_not_found()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicUsize::new(0);
        let out: Result<()> = on_conflict(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Api(ApiError::new(Reason::Conflict, "stale")))
        })
        .await;
        assert!(out.is_err_and(|e| e.is_conflict()));
        assert_eq!(calls.load(Ordering::SeqCst), CONFLICT_ATTEMPTS);
    }
}
