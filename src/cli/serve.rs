//! `switchyard serve`: the control plane as a long-running process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::signal::ShutdownSignal;
use crate::control_plane::{ControlPlane, ControlPlaneOptions, DEFAULT_ADMIN, DEFAULT_XDS};
use crate::source::DirectorySourceOptions;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The spec directory: Istio YAML files, watched for changes.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Where Envoys connect for ADS (State-of-the-World and Delta on the same port).
    #[arg(long, default_value_t = DEFAULT_XDS)]
    pub xds: SocketAddr,
    /// The admin HTTP endpoint: /metrics, /ready, /debug/config, /debug/proxies.
    #[arg(long, default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// How long the spec directory must stay quiet after a change before it is re-read, in milliseconds.
    #[arg(long, default_value_t = 75)]
    pub debounce_ms: u64,
}

impl Args {
    pub fn options(&self) -> ControlPlaneOptions {
        ControlPlaneOptions {
            config_dir: self.config.clone(),
            xds: self.xds,
            admin: Some(self.admin),
            source: DirectorySourceOptions {
                debounce: Duration::from_millis(self.debounce_ms),
                ..DirectorySourceOptions::default()
            },
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut stop = ShutdownSignal::install()?;
        let control_plane = tokio::select! {
            started = ControlPlane::start(args.options()) => started?,
            () = stop.recv() => {
                tracing::info!("stopped while starting");
                return Ok(ExitCode::SUCCESS);
            }
        };
        tracing::info!(config = %args.config.display(), "watching the spec directory; Ctrl-C to stop");
        stop.recv().await;
        tracing::info!("shutting down");
        control_plane.shutdown(Duration::from_secs(5)).await;
        Ok(ExitCode::SUCCESS)
    })
}
