//! What the controller-manager's benchmark programs share: flags, the controller-manager as its
//! own process (the release binary next to the example, so its CPU time is measured alone), its
//! CPU time and memory from /proc, percentiles.
// Each example uses a part of this module.
#![allow(dead_code)]

use std::time::Duration;

use futures::StreamExt;
use niwa_client::runtime::watcher;
use niwa_client::{Api, Object};
use tokio_util::sync::CancellationToken;

pub use niwa_testkit::bench::{arg, proc_usage};

/// The `p` quantile (0–1) of sorted durations, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// "p50 … ms, p90 … ms, p99 … ms, max … ms" of unsorted durations.
pub fn summary(durations: &[Duration]) -> String {
    let mut l = durations.to_vec();
    l.sort();
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&l, 0.5),
        percentile(&l, 0.9),
        percentile(&l, 0.99),
        percentile(&l, 1.0)
    )
}

/// Start the release `niwa-controller-manager` next to this example against `api_url`, without
/// leader election, with `extra` flags (`--controllers …`, timing flags).
pub fn controller_manager(api_url: &str, extra: &[&str]) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("niwa-controller-manager"))
        .ok_or_else(|| anyhow::anyhow!("no binary dir"))?;
    let mut args = vec![
        "--apiserver",
        api_url,
        "--leader-elect=false",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    tokio::process::Command::new(&bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))
}

/// Hand every object a watch of `api` lists or applies to `on_object`, in a task, until `token`.
pub fn watch_objects<K: Object>(
    api: Api<K>,
    token: CancellationToken,
    mut on_object: impl FnMut(K) + Send + 'static,
) {
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        loop {
            let ev = tokio::select! {
                _ = token.cancelled() => break,
                ev = events.next() => ev,
            };
            match ev {
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => on_object(o),
                Some(_) => {}
                None => break,
            }
        }
    });
}
