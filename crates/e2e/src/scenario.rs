//! Running a test group's scenarios concurrently on one cluster, each in its own namespace, and
//! reporting every failure together (one broken scenario does not hide the others).

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use anyhow::Result;

/// A named scenario.
pub type Scenario<'a> = (
    &'static str,
    Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>,
);

/// Boxes a scenario future under a name.
pub fn scenario<'a>(
    name: &'static str,
    f: impl Future<Output = Result<()>> + Send + 'a,
) -> Scenario<'a> {
    (name, Box::pin(f))
}

/// Runs all scenarios at once; panics listing each failed one with its error.
pub async fn run_all(scenarios: Vec<Scenario<'_>>) {
    let started = Instant::now();
    let runs = scenarios.into_iter().map(|(name, f)| async move {
        let t = Instant::now();
        let r = f.await;
        let secs = t.elapsed().as_secs_f64();
        match &r {
            Ok(()) => eprintln!("e2e: ✓ {name} ({secs:.1} s)"),
            Err(e) => eprintln!("e2e: ✗ {name} ({secs:.1} s): {e:#}"),
        }
        (name, r)
    });
    let results = futures::future::join_all(runs).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e:#}")))
        .collect();
    eprintln!(
        "e2e: scenarios done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} scenario(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
