//! Polling until a condition holds: the suite asserts on eventual state, never on timing.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(300);

/// Calls `check` until it returns `Ok` or `timeout` passes; the error names `what` and the last
/// reason `check` gave.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() >= timeout => {
                return Err(anyhow!(
                    "{what}: not so after {:.0} s; last: {e:#}",
                    timeout.as_secs_f64()
                ));
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
