//! `niwa`: flag parsing and logging; the commands live in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = niwa::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match niwa::run(cli, &mut out, &mut err).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(niwa::CliError::Failed(_)) => std::process::ExitCode::FAILURE,
        Err(e @ niwa::CliError::Usage(_)) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
