//! # niwa (the command line)
//!
//! The user's entry point: `niwa up/down/status` run the local multi-process cluster
//! ([`cluster`]), and a small kubectl-like client of niwa's gRPC API — `niwa apply -f`,
//! `niwa get`, `niwa delete` — is the reference client of that API.
//!
//! Where to start reading:
//! * [`Cli`] / [`Command`] — the flags (clap); [`run`] dispatches to one module per subcommand.
//! * [`apply`] — create-or-update with kubectl's three-way merge (last-applied annotation).
//! * [`get`] — lists, single objects, `-o yaml|json|name|wide`, `-w`; tables from [`columns`].
//! * [`delete`] — by name, by file, by label selector; waits until objects are gone.
//! * [`manifest`] — reading multi-document YAML/JSON from files, directories and stdin.
//! * [`target`] — resolving what the user typed (`po`, `deploy`, `svc/web`) to a resource.

pub mod apply;
pub mod cluster;
pub mod columns;
pub mod delete;
pub mod get;
pub mod manifest;
pub mod output;
pub mod target;

use clap::{Parser, Subcommand};
use niwa_client::Client;

/// Where the apiserver is when nothing says otherwise (ARCHITECTURE.md §5).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:6443";

#[derive(Debug, Parser)]
#[command(
    name = "niwa",
    version,
    about = "niwa: a Kubernetes-compatible cluster on one machine",
    long_about = "niwa: a Kubernetes-compatible cluster on one machine.\n\n\
        apply, get and delete talk to niwa's apiserver over its gRPC API (kubectl works too, over REST)."
)]
pub struct Cli {
    /// The apiserver's address.
    #[arg(
        long,
        short = 's',
        global = true,
        env = "NIWA_SERVER",
        default_value = DEFAULT_SERVER
    )]
    pub server: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from files, directories or stdin (`kubectl apply -f`).
    Apply(apply::ApplyArgs),
    /// Show objects (`kubectl get`).
    Get(get::GetArgs),
    /// Delete objects by name, file or label selector (`kubectl delete`).
    Delete(delete::DeleteArgs),
    /// Start a local cluster: store, apiserver, controllers, DNS, ingress, and per node a kubelet
    /// and a proxy, each its own process.
    Up(cluster::up::UpArgs),
    /// Stop the local cluster (its data stays; `niwa up` resumes it).
    Down(cluster::down::DownArgs),
    /// The local cluster's components, their health, and its nodes.
    Status(cluster::status::StatusArgs),
}

/// A failed command: already reported in kubectl's words; the exit code says how it failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Some objects failed (each already printed to stderr); others may have succeeded.
    #[error("{0}")]
    Failed(String),
    /// Bad flags or input (exit code 1 too, as kubectl).
    #[error("error: {0}")]
    Usage(String),
}

/// Runs one command, writing results to `out` and problems to `err`.
pub async fn run(
    cli: Cli,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    // The local cluster's commands need no client of `--server`.
    let command = match cli.command {
        Command::Up(args) => return cluster::up::run(args, out).await,
        Command::Down(args) => return cluster::down::run(args, out).await,
        Command::Status(args) => return cluster::status::run(args, out).await,
        other => other,
    };
    let client = Client::connect_lazy(&cli.server).map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = Context {
        client,
        server: cli.server.clone(),
    };
    match command {
        Command::Apply(args) => apply::run(&ctx, args, out, err).await,
        Command::Get(args) => get::run(&ctx, args, out, err).await,
        Command::Delete(args) => delete::run(&ctx, args, out, err).await,
        Command::Up(_) | Command::Down(_) | Command::Status(_) => Ok(()),
    }
}

/// What every API subcommand gets.
#[derive(Debug, Clone)]
pub struct Context {
    pub client: Client,
    pub server: String,
}

impl Context {
    /// An error as kubectl words it: `Error from server (NotFound): pods "x" not found`, or a hint
    /// when the apiserver cannot be reached.
    pub fn describe(&self, error: &niwa_client::Error) -> String {
        match error {
            niwa_client::Error::Api(status) => {
                format!(
                    "Error from server ({}): {}",
                    status.reason.as_str(),
                    status.message
                )
            }
            niwa_client::Error::Transport(detail) => format!(
                "error: cannot reach the apiserver at {} ({detail}); is the cluster up (`niwa up`)? \
                 Set --server or NIWA_SERVER to another address",
                self.server
            ),
            other => format!("error: {other}"),
        }
    }
}
