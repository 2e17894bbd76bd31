//! Runs every workload against both servers and prints medians with niwa/etcd ratios.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;

use crate::Args;
use crate::server::{Fsyncs, Kind, Server};
use crate::workload::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
    Info,
}

/// One row of the result table: a metric and the per-run values for each server.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    pub(crate) niwa: Vec<f64>,
    pub(crate) etcd: Vec<f64>,
}

pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub(crate) fn fmt_value(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if unit == "ops/s" => format!("{v:.0}"),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

pub(crate) struct Bench {
    pub(crate) args: Args,
    pub(crate) rows: Vec<Row>,
}

impl Bench {
    pub(crate) fn row(&mut self, name: String, unit: &'static str, better: Better) -> usize {
        if let Some(i) = self.rows.iter().position(|r| r.name == name) {
            return i;
        }
        self.rows.push(Row {
            name,
            unit,
            better,
            niwa: Vec::new(),
            etcd: Vec::new(),
        });
        self.rows.len() - 1
    }

    pub(crate) fn record(
        &mut self,
        kind: Kind,
        name: String,
        unit: &'static str,
        better: Better,
        v: f64,
    ) {
        let i = self.row(name, unit, better);
        match kind {
            Kind::Niwa => self.rows[i].niwa.push(v),
            Kind::Etcd => self.rows[i].etcd.push(v),
        }
    }

    pub(crate) fn kinds(&self) -> Vec<Kind> {
        if self.args.niwa_only {
            vec![Kind::Niwa]
        } else {
            vec![Kind::Niwa, Kind::Etcd]
        }
    }

    pub(crate) fn wants(&self, workload: &str) -> bool {
        self.args.workloads.iter().any(|w| w == workload)
    }

    pub(crate) fn warmup(&self) -> Duration {
        Duration::from_millis((self.args.seconds * 1000 / 5).clamp(200, 1000))
    }

    pub(crate) fn window(&self) -> Duration {
        Duration::from_secs(self.args.seconds.max(1))
    }

    pub(crate) async fn run(&mut self) -> Result<()> {
        let kinds = self.kinds();
        let (warmup, window) = (self.warmup(), self.window());
        // Runs are interleaved (niwa, etcd, niwa, etcd, ...) so drift on the machine hits both.
        if self.wants("put") {
            for c in self.args.put_concurrency.clone() {
                for run in 0..self.args.runs {
                    for &kind in &kinds {
                        let server = Server::start(kind, &self.args).await?;
                        preload(&server).await?;
                        let (rev, fsyncs) = (server.revision().await?, server.wal_fsyncs().await?);
                        let s = closed_loop(&server, Op::Put, c, warmup, window).await?;
                        let puts = (server.revision().await? - rev) as f64;
                        let after = server.wal_fsyncs().await?;
                        drop(server);
                        self.kv_rows(kind, &format!("put c={c}"), &s, run);
                        self.fsync_rows(kind, &format!("put c={c}"), run, puts, fsyncs, after);
                    }
                }
            }
        }
        for (workload, op, label) in [
            ("lget", Op::GetLinearizable, "get linearizable"),
            ("sget", Op::GetSerializable, "get serializable"),
        ] {
            if !self.wants(workload) {
                continue;
            }
            for c in self.args.get_concurrency.clone() {
                for run in 0..self.args.runs {
                    for &kind in &kinds {
                        let server = Server::start(kind, &self.args).await?;
                        preload(&server).await?;
                        let s = closed_loop(&server, op, c, warmup, window).await?;
                        drop(server);
                        self.kv_rows(kind, &format!("{label} c={c}"), &s, run);
                    }
                }
            }
        }
        if self.wants("watch") {
            let w = self.args.watchers;
            for run in 0..self.args.runs {
                for &kind in &kinds {
                    let server = Server::start(kind, &self.args).await?;
                    let r = watch_fanout(&server, w, self.args.watch_rate, warmup, window).await?;
                    drop(server);
                    let delivered = 100.0 * r.received as f64 / r.expected.max(1) as f64;
                    eprintln!(
                        "  run {run} {:4} watch {w} watchers: p50 {:.2} ms p99 {:.2} ms, {}/{} events ({delivered:.1}%)",
                        kind.name(),
                        r.samples.percentile_ms(50.0),
                        r.samples.percentile_ms(99.0),
                        r.received,
                        r.expected,
                    );
                    let name = format!("watch {w} watchers @{}/s", self.args.watch_rate);
                    let p50 = r.samples.percentile_ms(50.0);
                    let p99 = r.samples.percentile_ms(99.0);
                    self.record(kind, format!("{name} p50"), "ms", Better::Lower, p50);
                    self.record(kind, format!("{name} p99"), "ms", Better::Lower, p99);
                    self.record(
                        kind,
                        format!("{name} delivered"),
                        "%",
                        Better::Info,
                        delivered,
                    );
                }
            }
        }
        if self.wants("mem") {
            let keys = self.args.mem_keys.max(1);
            for run in 0..self.args.runs {
                for &kind in &kinds {
                    let server = Server::start(kind, &self.args).await?;
                    let kib = memory(&server, keys).await?;
                    drop(server);
                    let mib = kib as f64 / 1024.0 * (100_000.0 / keys as f64);
                    eprintln!(
                        "  run {run} {:4} memory: +{mib:.1} MiB RSS per 100k keys",
                        kind.name()
                    );
                    self.record(
                        kind,
                        "RSS growth per 100k keys".into(),
                        "MiB",
                        Better::Lower,
                        mib,
                    );
                }
            }
        }
        Ok(())
    }

    pub(crate) fn kv_rows(&mut self, kind: Kind, label: &str, s: &Samples, run: usize) {
        let (ops, p50, p99) = (
            s.ops_per_sec(),
            s.percentile_ms(50.0),
            s.percentile_ms(99.0),
        );
        eprintln!(
            "  run {run} {:4} {label}: {ops:.0} ops/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
            kind.name()
        );
        self.record(kind, label.to_string(), "ops/s", Better::Higher, ops);
        self.record(kind, format!("{label} p50"), "ms", Better::Lower, p50);
        self.record(kind, format!("{label} p99"), "ms", Better::Lower, p99);
    }

    /// How many puts shared one WAL fdatasync and how long one took, over the whole closed loop
    /// (warm-up included): what sets put throughput once the CPU is not the limit.
    pub(crate) fn fsync_rows(
        &mut self,
        kind: Kind,
        label: &str,
        run: usize,
        puts: f64,
        before: Fsyncs,
        after: Fsyncs,
    ) {
        let count = (after.count - before.count).max(1.0);
        let per_fsync = puts / count;
        let mean_ms = 1000.0 * (after.seconds - before.seconds) / count;
        eprintln!(
            "  run {run} {:4} {label}: {per_fsync:.1} puts per WAL fdatasync, fdatasync mean {mean_ms:.3} ms",
            kind.name()
        );
        self.record(
            kind,
            format!("{label} per fdatasync"),
            "puts",
            Better::Info,
            per_fsync,
        );
        self.record(
            kind,
            format!("{label} fdatasync mean"),
            "ms",
            Better::Info,
            mean_ms,
        );
    }

    pub(crate) fn table(&self) -> String {
        let header = [
            "workload".to_string(),
            "niwa".to_string(),
            "etcd".to_string(),
            "niwa/etcd".to_string(),
        ];
        let mut lines: Vec<[String; 4]> = vec![header];
        for row in &self.rows {
            let (n, e) = (median(&row.niwa), median(&row.etcd));
            let ratio = match (n, e) {
                (Some(n), Some(e)) if e > 0.0 && row.better != Better::Info => {
                    let hint = match row.better {
                        Better::Higher => " (higher is better)",
                        Better::Lower => " (lower is better)",
                        Better::Info => "",
                    };
                    format!("{:.2}x{hint}", n / e)
                }
                _ => "-".into(),
            };
            lines.push([
                format!("{} [{}]", row.name, row.unit),
                fmt_value(n, row.unit),
                fmt_value(e, row.unit),
                ratio,
            ]);
        }
        let mut out = String::new();
        if self.args.markdown {
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(out, "| {} | {} | {} | {} |", l[0], l[1], l[2], l[3]);
                if i == 0 {
                    let _ = writeln!(out, "|---|---:|---:|---:|");
                }
            }
        } else {
            let mut width = [0usize; 4];
            for l in &lines {
                for (w, cell) in width.iter_mut().zip(l.iter()) {
                    *w = (*w).max(cell.len());
                }
            }
            for (i, l) in lines.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<w0$} | {:>w1$} | {:>w2$} | {:<w3$}",
                    l[0],
                    l[1],
                    l[2],
                    l[3],
                    w0 = width[0],
                    w1 = width[1],
                    w2 = width[2],
                    w3 = width[3]
                );
                if i == 0 {
                    let total = width.iter().sum::<usize>() + 9;
                    let _ = writeln!(out, "{}", "-".repeat(total));
                }
            }
        }
        out
    }
}
