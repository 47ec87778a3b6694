//! `bookinfo`: runs one Bookinfo workload.

use std::net::SocketAddr;

use anyhow::Context;
use bookinfo::{AppConfig, Service, Upstreams};
use clap::Parser;

#[derive(Parser)]
// No `version` attribute: `--version` is the workload version (the real images' SERVICE_VERSION).
#[command(
    name = "bookinfo",
    about = "A stand-in for one Istio Bookinfo workload"
)]
struct Cli {
    /// productpage, details, reviews or ratings.
    #[arg(long)]
    service: Service,
    /// v1 (every service), v2 or v3 (reviews).
    #[arg(long, default_value = "v1")]
    version: String,
    /// Where the app listens ("the pod's localhost", e.g. 127.0.1.2:9080).
    #[arg(long)]
    listen: SocketAddr,
    /// The sidecar's outbound listener; every outgoing call connects to this IP.
    #[arg(long)]
    outbound: SocketAddr,
    /// Reported as reviews' `podname`; defaults to <service>-<version>.
    #[arg(long)]
    pod_name: Option<String>,
    /// Reported as reviews' `clustername`.
    #[arg(long, env = "CLUSTER_NAME")]
    cluster_name: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let pod_name = cli
        .pod_name
        .unwrap_or_else(|| format!("{}-{}", cli.service, cli.version));
    let mut config = AppConfig::new(cli.service, cli.version, pod_name, cli.outbound);
    config.upstreams = Upstreams::from_env()?;
    config.cluster_name = cli.cluster_name;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    bookinfo::serve_with_shutdown(config, listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
