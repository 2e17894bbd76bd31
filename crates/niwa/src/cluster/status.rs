//! `niwa status`: the components of the local cluster (from the state file, with a live health
//! probe) and its nodes (from the apiserver).

use clap::Args;
use k8s_openapi::api::core::v1::Node;
use niwa_client::ListParams;
use niwa_cluster::ClusterState;
use niwa_cluster::state::pid_alive;

use super::DataDirArgs;
use crate::CliError;

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
}

pub async fn run(args: StatusArgs, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let state = ClusterState::load(&args.dir.data_dir)
        .map_err(|e| CliError::Failed(format!("error: {e}")))?;
    let alive = state.supervisor_alive();
    let _ = writeln!(
        out,
        "cluster {} (supervisor pid {}{}), apiserver {}, kubeconfig {}",
        args.dir.data_dir.display(),
        state.supervisor_pid,
        if alive { "" } else { ", NOT RUNNING" },
        state.apiserver,
        state.kubeconfig.display()
    );
    let mut rows = vec![vec![
        "COMPONENT".to_string(),
        "PHASE".into(),
        "PID".into(),
        "RESTARTS".into(),
        "HEALTH".into(),
        "LAST EXIT".into(),
    ]];
    for c in &state.components {
        let running = alive && c.pid.is_some_and(pid_alive);
        let addr = c
            .health
            .trim_start_matches("http://")
            .trim_end_matches("/healthz");
        let healthy = match (running, addr.parse()) {
            (true, Ok(addr)) => niwa_cluster::supervisor::healthz(addr).await,
            _ => false,
        };
        rows.push(vec![
            c.name.clone(),
            if alive {
                format!("{:?}", c.phase).to_lowercase()
            } else {
                "stopped".into()
            },
            c.pid
                .filter(|_| running)
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            c.restarts.to_string(),
            if healthy {
                format!("ok ({})", c.health)
            } else {
                format!("down ({})", c.health)
            },
            c.last_exit.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    write_table(out, &rows);
    if !alive {
        return Ok(());
    }
    let _ = writeln!(out);
    match node_rows(&state.apiserver).await {
        Ok(rows) => write_table(out, &rows),
        Err(e) => {
            let _ = writeln!(out, "nodes: cannot list them from {}: {e}", state.apiserver);
        }
    }
    Ok(())
}

async fn node_rows(apiserver: &str) -> Result<Vec<Vec<String>>, niwa_client::Error> {
    let client = niwa_client::Client::connect(apiserver).await?;
    let nodes = client
        .cluster::<Node>()
        .list(&ListParams::default())
        .await?;
    let mut rows = vec![vec![
        "NODE".to_string(),
        "READY".into(),
        "ADDRESS".into(),
        "POD CIDR".into(),
    ]];
    for n in nodes.items {
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
            .unwrap_or_else(|| "Unknown".into());
        let address = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .unwrap_or_default();
        let cidr = n
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .unwrap_or_default();
        rows.push(vec![
            n.metadata.name.unwrap_or_default(),
            ready,
            address,
            cidr,
        ]);
    }
    Ok(rows)
}

/// Header row first, as kubectl's tabwriter lays it out ([`crate::output::Table`]).
fn write_table(out: &mut dyn std::io::Write, rows: &[Vec<String>]) {
    let _ = write!(
        out,
        "{}",
        crate::output::Table::default().render(None, rows)
    );
}
