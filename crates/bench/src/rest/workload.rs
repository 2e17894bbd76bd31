//! The workload: load pods, time lists over gRPC, REST and kubectl, measure a big streamed list.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use niwa_api::proto::resources_client::ResourcesClient;
use niwa_api::proto::{CreateRequest, ListRequest, ResourceRef};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::Args;
use crate::cluster::Cluster;
use crate::watchers;

const NAMESPACES: usize = 10;
const PAGE: i64 = 500;
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

type Http = Client<HttpConnector, Empty<Bytes>>;

fn rref(resource: &str, namespace: &str) -> ResourceRef {
    ResourceRef {
        group: String::new(),
        version: "v1".into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: String::new(),
        subresource: String::new(),
    }
}

/// A pod of realistic size (~1 KiB of JSON).
fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:06}"), "namespace": format!("ns-{}", i % NAMESPACES),
            "labels": {"app": format!("app-{}", i % 50), "tier": "web", "pod-template-hash": "5d8f7c9b6"},
            "annotations": {"kubernetes.io/created-by": "niwa-rest-bench"}},
        "spec": {"nodeName": format!("node-{}", i % 100), "restartPolicy": "Always",
            "containers": [{"name": "app", "image": "registry.example/app:1.2.3",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"}},
                "env": [{"name": "MODE", "value": "production"}]}]},
    })
}

/// Creates pods `from..to` over gRPC.
async fn load(
    client: &ResourcesClient<Channel>,
    from: usize,
    to: usize,
    concurrency: usize,
) -> Result<()> {
    let results = futures::stream::iter(from..to)
        .map(|i| {
            let mut c = client.clone();
            async move {
                let object = serde_json::to_vec(&pod(i))?;
                c.create(CreateRequest {
                    r#ref: Some(rref("pods", &format!("ns-{}", i % NAMESPACES))),
                    object,
                    ..Default::default()
                })
                .await
                .context("creating a pod")?;
                Ok::<(), anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}

/// GET `path` and count the body's bytes (read as it streams, not kept). Returns (bytes, body
/// head when `keep` asks for the body).
async fn get(
    http: &Http,
    api: &str,
    path: &str,
    accept: &str,
    keep: bool,
) -> Result<(usize, Vec<u8>)> {
    let req = hyper::Request::get(format!("http://{api}{path}"))
        .header("accept", accept)
        .body(Empty::new())?;
    let resp = http.request(req).await?;
    if !resp.status().is_success() {
        bail!("GET {path}: {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut n = 0;
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len();
            if keep {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((n, kept))
}

fn continue_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["metadata"]["continue"].as_str().map(String::from))
        .unwrap_or_default()
}

async fn grpc_list(client: &ResourcesClient<Channel>, limit: i64) -> Result<usize> {
    let mut c = client.clone();
    let mut token = String::new();
    let mut total = 0;
    loop {
        let resp = c
            .list(ListRequest {
                r#ref: Some(rref("pods", "")),
                limit,
                continue_token: token.clone(),
                ..Default::default()
            })
            .await?
            .into_inner();
        total += resp.object.len();
        token = if limit > 0 {
            continue_of(&resp.object)
        } else {
            String::new()
        };
        if token.is_empty() {
            return Ok(total);
        }
    }
}

async fn rest_table_paged(http: &Http, api: &str) -> Result<usize> {
    let mut token = String::new();
    let mut total = 0;
    loop {
        let mut path = format!("/api/v1/pods?limit={PAGE}");
        if !token.is_empty() {
            path.push_str(&format!("&continue={token}"));
        }
        let (n, body) = get(http, api, &path, TABLE, true).await?;
        total += n;
        token = continue_of(&body);
        if token.is_empty() {
            return Ok(total);
        }
    }
}

/// `kubectl get pods -A`, with `extra` flags (`--chunk-size=0`: one unpaged request).
async fn kubectl_get_all(
    args: &Args,
    cluster: &Cluster,
    want_lines: usize,
    extra: &[&str],
) -> Result<()> {
    let out = tokio::process::Command::new(&args.kubectl)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--cache-dir")
        .arg(cluster.dir.path().join("kcache"))
        .args(["get", "pods", "-A"])
        .args(extra)
        .output()
        .await?;
    let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    if !out.status.success() || lines != want_lines {
        bail!(
            "kubectl get pods -A: {} lines (want {want_lines}): {}",
            lines,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The earliest client-go's default token bucket (5 requests/s, burst 10) lets the last of
/// `requests` requests go out, in milliseconds.
fn kubectl_floor_ms(requests: usize) -> f64 {
    requests.saturating_sub(10) as f64 / 5.0 * 1000.0
}

/// Median of `runs` timings of `f`, in milliseconds.
async fn time<F, Fut>(runs: usize, f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let ms = times(runs, f).await?;
    Ok(ms[ms.len() / 2])
}

/// `runs` timings of `f` in milliseconds, sorted (never empty).
async fn times<F, Fut>(runs: usize, mut f: F) -> Result<Vec<f64>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut ms = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f().await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

pub struct Report {
    rows: Vec<(String, String, String)>,
}

impl Report {
    fn add(&mut self, what: impl Into<String>, value: String, note: impl Into<String>) {
        self.rows.push((what.into(), value, note.into()));
    }

    pub fn print(&self, markdown: bool) {
        if markdown {
            println!("| measurement | value | note |\n|---|---:|---|");
            for (a, b, c) in &self.rows {
                println!("| {a} | {b} | {c} |");
            }
        } else {
            for (a, b, c) in &self.rows {
                println!("{a:<58} {b:>12}  {c}");
            }
        }
    }
}

pub async fn run(args: &Args) -> Result<Report> {
    let cluster = Cluster::start(args).await?;
    let channel = Channel::from_shared(format!("http://{}", cluster.api))?
        .connect()
        .await
        .context("connecting to the apiserver")?;
    let client = ResourcesClient::new(channel).max_decoding_message_size(usize::MAX);
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    let mut report = Report { rows: Vec::new() };

    for i in 0..NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{i}")}});
        client
            .clone()
            .create(CreateRequest {
                r#ref: Some(rref("namespaces", "")),
                object: serde_json::to_vec(&ns)?,
                ..Default::default()
            })
            .await?;
    }
    let t = Instant::now();
    load(&client, 0, args.pods, args.concurrency).await?;
    let rate = args.pods as f64 / t.elapsed().as_secs_f64();
    report.add(
        format!("load {} pods over gRPC (c={})", args.pods, args.concurrency),
        format!("{rate:.0}/s"),
        "creates",
    );
    // Let the watch cache catch up before timing lists.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let n = args.pods;
    let grpc_all = time(args.runs, || async {
        grpc_list(&client, 0).await.map(|_| ())
    })
    .await?;
    let rest_json = time(args.runs, || async {
        get(
            &http,
            &cluster.api,
            "/api/v1/pods",
            "application/json",
            false,
        )
        .await
        .map(|_| ())
    })
    .await?;
    let rest_table_all = time(args.runs, || async {
        get(&http, &cluster.api, "/api/v1/pods", TABLE, false)
            .await
            .map(|_| ())
    })
    .await?;
    let grpc_paged = time(args.runs, || async {
        grpc_list(&client, PAGE).await.map(|_| ())
    })
    .await?;
    let rest_paged = time(args.runs, || async {
        rest_table_paged(&http, &cluster.api).await.map(|_| ())
    })
    .await?;
    report.add(
        format!("list {n} pods, gRPC, unpaged [ms]"),
        format!("{grpc_all:.0}"),
        "reference",
    );
    report.add(
        format!("list {n} pods, REST JSON, unpaged [ms]"),
        format!("{rest_json:.0}"),
        format!("{:.2}x gRPC", rest_json / grpc_all),
    );
    report.add(
        format!("list {n} pods, REST Table, unpaged [ms]"),
        format!("{rest_table_all:.0}"),
        format!("{:.2}x gRPC", rest_table_all / grpc_all),
    );
    report.add(
        format!("list {n} pods, gRPC, pages of {PAGE} [ms]"),
        format!("{grpc_paged:.0}"),
        "reference",
    );
    report.add(
        format!("list {n} pods, REST Table, pages of {PAGE} (kubectl's request) [ms]"),
        format!("{rest_paged:.0}"),
        format!("{:.2}x gRPC paged", rest_paged / grpc_paged),
    );
    if !args.kubectl.is_empty() {
        // The first run also fetches discovery into the cache dir, as a user's first command does.
        kubectl_get_all(args, &cluster, n + 1, &[]).await?;
        let k = time(args.runs, || kubectl_get_all(args, &cluster, n + 1, &[])).await?;
        report.add(
            format!("`kubectl get pods -A`, {n} pods [ms]"),
            format!("{k:.0}"),
            format!(
                "goal < 1000 ms; kubectl's own 5 QPS / burst 10 limiter lets its {} page requests finish no sooner than {:.0} ms",
                n.div_ceil(PAGE as usize),
                kubectl_floor_ms(n.div_ceil(PAGE as usize))
            ),
        );
        let k0 = time(args.runs, || {
            kubectl_get_all(args, &cluster, n + 1, &["--chunk-size=0"])
        })
        .await?;
        report.add(
            format!("`kubectl get pods -A --chunk-size=0`, {n} pods [ms]"),
            format!("{k0:.0}"),
            "one unpaged request: the server's part plus kubectl's decoding and printing",
        );
    }

    if args.watchers > 0 && n > 0 {
        let targets: Vec<(String, String)> = (0..n.min(100))
            .map(|i| (format!("ns-{}", i % NAMESPACES), format!("pod-{i:06}")))
            .collect();
        let w = watchers::run(
            &cluster.api,
            &targets,
            args.watchers,
            args.watch_rate,
            args.watch_seconds,
        )
        .await?;
        let label = format!(
            "{} gRPC watchers of all pods, {:.0} pod updates/s",
            w.watchers, w.rate
        );
        report.add(
            format!("{label}: delivery p50 / p99 / max [ms]"),
            format!("{:.1} / {:.1} / {:.1}", w.p50_ms, w.p99_ms, w.max_ms),
            "goal p99 <= 100 ms; send (before the patch request) to receipt",
        );
        report.add(
            format!("{label}: events delivered [/s]"),
            format!("{:.0}", w.events_per_s),
            format!(
                "{} of {} expected ({} updates x {} watchers)",
                w.delivered,
                w.sent * w.watchers,
                w.sent,
                w.watchers
            ),
        );
    }

    if args.big_pods > n {
        let t = Instant::now();
        load(&client, n, args.big_pods, args.concurrency).await?;
        let rate = (args.big_pods - n) as f64 / t.elapsed().as_secs_f64();
        report.add(
            format!("load to {} pods over gRPC", args.big_pods),
            format!("{rate:.0}/s"),
            "creates",
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let big = args.big_pods;
        let json_ms = times(args.runs, || async {
            get(
                &http,
                &cluster.api,
                "/api/v1/pods",
                "application/json",
                false,
            )
            .await
            .map(|_| ())
        })
        .await?;
        report.add(
            format!("list {big} pods, REST JSON, unpaged: p50 / max [ms]"),
            format!(
                "{:.0} / {:.0}",
                json_ms[json_ms.len() / 2],
                json_ms[json_ms.len() - 1]
            ),
            format!("{} runs; goal (issue 3) p99 <= 30 s", json_ms.len()),
        );
        let paged_ms = times(args.runs, || async {
            rest_table_paged(&http, &cluster.api).await.map(|_| ())
        })
        .await?;
        report.add(
            format!("list {big} pods, REST Table, pages of {PAGE}: p50 / max [ms]"),
            format!(
                "{:.0} / {:.0}",
                paged_ms[paged_ms.len() / 2],
                paged_ms[paged_ms.len() - 1]
            ),
            "kubectl's request sequence",
        );
        // Prime the watch cache, then measure one streamed list of each kind.
        get(
            &http,
            &cluster.api,
            "/api/v1/pods",
            "application/json",
            false,
        )
        .await?;
        for (label, accept) in [("JSON", "application/json"), ("Table", TABLE)] {
            let rss = cluster.rss_mib().unwrap_or(0.0);
            cluster.reset_peak()?;
            let t = Instant::now();
            let (bytes, _) = get(&http, &cluster.api, "/api/v1/pods", accept, false).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let peak = cluster.peak_mib().unwrap_or(0.0);
            let size = bytes as f64 / (1024.0 * 1024.0);
            report.add(
                format!(
                    "list {} pods, REST {label}, unpaged: size [MiB] / time [ms]",
                    args.big_pods
                ),
                format!("{size:.0} / {ms:.0}"),
                "streamed",
            );
            report.add(
                "  apiserver peak RSS growth during that list [MiB]",
                format!("{:.1}", (peak - rss).max(0.0)),
                format!(
                    "{:.2}x the list's size (one full copy = 1.00x)",
                    (peak - rss).max(0.0) / size
                ),
            );
        }
        report.add(
            "apiserver RSS after the big lists [MiB]",
            format!("{:.0}", cluster.rss_mib().unwrap_or(0.0)),
            "watch cache holds every pod once",
        );
    }
    Ok(report)
}
