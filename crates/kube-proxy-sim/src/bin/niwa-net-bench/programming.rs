//! The programming-time measurement: `--services` Services in 127.97.0.0/16 with one endpoint
//! each, a freshly started proxy, and the time until it has programmed them all; then, when
//! another mode follows, the Services deleted again so that every mode measures the same number.

use niwa_client::DeleteParams;

use super::*;

/// N Services with endpoints exist; a fresh proxy starts; the time until all of them are
/// programmed, and the seconds its syncs took meanwhile (`kubeproxy_sync_proxy_rules_duration`).
///
/// With `clean_up`, the Services are deleted afterwards and this returns once that proxy has
/// removed them all, so a next mode starts from the bench's own Services only.
#[allow(clippy::too_many_arguments)]
pub async fn measure(
    args: &Args,
    mode: &str,
    services: &Api<Service>,
    slices: &Api<EndpointSlice>,
    pod: IpAddr,
    port: u16,
    proxy_args: &[String],
    proxy_metrics: SocketAddr,
    baseline: f64,
    clean_up: bool,
) -> Result<(Duration, f64)> {
    create_services(args, services, slices, pod, port).await?;
    let start = Instant::now();
    let _proxy = spawn(&args.bin_dir.join("niwa-proxy"), proxy_args)?;
    // Userspace: one listener per Service; nftables: a `services` and a `backends` element.
    let (done_metric, per_service) = if mode == "nftables" {
        ("niwa_proxy_nft_elements", 2.0)
    } else {
        ("niwa_proxy_listeners", 1.0)
    };
    let want = args.services as f64 * per_service + baseline;
    let programmed = loop {
        if let Ok(m) = http_get(proxy_metrics, "/metrics").await
            && metric(&m, done_metric).unwrap_or(0.0) >= want
        {
            let syncs = metric(&m, "kubeproxy_sync_proxy_rules_duration_seconds_sum");
            break (start.elapsed(), syncs.unwrap_or(f64::NAN));
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{} Services not programmed within 120 s", args.services);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let last = IpAddr::V4(Ipv4Addr::new(
        127,
        97,
        ((args.services - 1) / 250) as u8,
        ((args.services - 1) % 250) as u8 + 1,
    ));
    wait_tcp(SocketAddr::new(last, 80), Duration::from_secs(5)).await?;
    if clean_up {
        delete_services(args, services, slices).await?;
        // This proxy still runs: once it is back to its baseline, the deletions have reached a
        // watcher, and the next mode's proxies list none of these Services.
        let removed = Instant::now();
        loop {
            if let Ok(m) = http_get(proxy_metrics, "/metrics").await
                && metric(&m, done_metric).is_some_and(|v| v <= baseline)
            {
                break;
            }
            if removed.elapsed() > Duration::from_secs(120) {
                bail!("{} Services not removed within 120 s", args.services);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "deleted; the proxy removed them {:.1} s after the last delete",
            removed.elapsed().as_secs_f64()
        );
    }
    Ok(programmed)
}

/// `--services` Services in 127.97.0.0/16, each with one endpoint (`pod`:`port`).
async fn create_services(
    args: &Args,
    services: &Api<Service>,
    slices: &Api<EndpointSlice>,
    pod: IpAddr,
    port: u16,
) -> Result<()> {
    eprintln!("creating {} Services with EndpointSlices...", args.services);
    let created = Instant::now();
    for_each_service(args.services, |i| {
        let (services, slices) = (services.clone(), slices.clone());
        async move {
            let name = format!("s{i}");
            let ip = IpAddr::V4(Ipv4Addr::new(127, 97, (i / 250) as u8, (i % 250) as u8 + 1));
            service(&services, &name, ip, 80).await?;
            slice(&slices, &name, &[pod], port).await
        }
    })
    .await?;
    eprintln!(
        "created in {:.1} s; starting a fresh proxy",
        created.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Deletes the Services (and their EndpointSlices: no controller-manager runs here to collect
/// them) that [`create_services`] made.
async fn delete_services(
    args: &Args,
    services: &Api<Service>,
    slices: &Api<EndpointSlice>,
) -> Result<()> {
    eprintln!("deleting the {} Services...", args.services);
    let deleted = Instant::now();
    for_each_service(args.services, |i| {
        let (services, slices) = (services.clone(), slices.clone());
        async move {
            let name = format!("s{i}");
            let dp = DeleteParams::default();
            slices.delete(&format!("{name}-1"), &dp).await?;
            services.delete(&name, &dp).await?;
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "deleted in {:.1} s; waiting for the proxy to remove them",
        deleted.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `op(i)` for Service `i` of `0..n`, 64 at once: enough to keep the apiserver busy, few
/// enough that 10,000 writes do not all wait in its queue at once.
async fn for_each_service<F, Fut>(n: usize, mut op: F) -> Result<()>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    use futures::StreamExt;
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..n {
        pending.push(op(i));
        if pending.len() >= 64
            && let Some(r) = pending.next().await
        {
            r?;
        }
    }
    while let Some(r) = pending.next().await {
        r?;
    }
    Ok(())
}
