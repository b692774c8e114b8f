//! The `shipgate` binary: CLI → config → telemetry → app.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shipgate::app::Application;
use shipgate::cli::{self, send_sample::SendSampleArgs, sign::SignArgs};
use shipgate::config::Settings;
use shipgate::telemetry;

/// jemalloc, not glibc's allocator: its per-thread caches make the many
/// short-lived allocations of each webhook and applied event cheaper
/// (measured in docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "shipgate",
    version,
    about = "Webhook ingestion gateway for shipment tracking"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A config file layered over the defaults (also after a subcommand).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway (the default).
    Serve,
    /// Check the configuration and status maps; print every problem found.
    CheckConfig,
    /// Print the headers a provider would send with a body (one per line,
    /// for `curl -H @file`).
    Sign(SignArgs),
    /// Post a built-in provider sample to a running gateway.
    SendSample(SendSampleArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Loaded first so that the shipped definitions' names parse as
    // providers (`shipgate sign aftership`); `serve` loads and checks
    // them again with the deployment's own.
    let _shipped = shipgate::providers::defined::Catalog::load(None);
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => cli::check_config(cli.config.as_deref()),
        Command::Sign(args) => cli::sign::sign(args),
        Command::SendSample(args) => cli::send_sample::send_sample(args).await,
        Command::Serve => match Settings::load(cli.config.as_deref()) {
            Ok(settings) => serve(settings).await,
            Err(e) => {
                eprintln!("shipgate: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(settings: Settings) -> ExitCode {
    telemetry::init(&settings.telemetry);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("shipgate: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); stopping on SIGINT only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
