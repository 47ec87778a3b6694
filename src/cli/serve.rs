//! `switchyard serve`: the control plane as a long-running process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::signal::{leave_runtime, ShutdownSignal};
use crate::control_plane::{ControlPlane, ControlPlaneOptions, DEFAULT_ADMIN, DEFAULT_XDS};
use crate::source::DirectorySourceOptions;
use crate::spec;
use crate::xds::identity::DEFAULT_TRUST_DOMAIN;
use crate::xds::TlsOptions;

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
    /// However busy the spec directory, a change is read at most this long after it was made, in
    /// milliseconds (Istio's PILOT_DEBOUNCE_MAX).
    #[arg(long, default_value_t = 1000)]
    pub debounce_max_ms: u64,
    /// Spec files larger than this many bytes are errors, not read.
    #[arg(long, default_value_t = spec::DEFAULT_MAX_FILE_SIZE, value_name = "BYTES")]
    pub max_file_size: u64,
    /// Serve an empty mesh when the spec directory holds no resources. Without it, a reading without
    /// resources (an emptied directory, a swap half done) is rejected and proxies keep the last good
    /// configuration.
    #[arg(long)]
    pub allow_empty: bool,
    /// Serve xDS over TLS with this certificate chain (PEM). Reloaded when the file changes.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM). Reloaded when the file changes.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: proxies must present a certificate signed by this CA, whose SPIFFE ID
    /// (spiffe://<trust domain>/ns/<namespace>/sa/<name>) names the node they claim. Reloaded when the
    /// file changes.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub client_ca: Option<PathBuf>,
    /// The trust domain of proxies' SPIFFE IDs.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN, requires = "client_ca")]
    pub trust_domain: String,
    /// A file holding the bearer token the admin endpoint requires (needed to bind it beyond loopback).
    #[arg(long, value_name = "FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// The admin endpoint's bearer token (prefer --admin-token-file: a command line is visible to every
    /// user of the machine).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    #[command(flatten)]
    pub xds_limits: super::xds_limits::XdsLimitArgs,
}

impl Args {
    pub fn options(&self) -> anyhow::Result<ControlPlaneOptions> {
        let admin_token =
            match (&self.admin_token_file, &self.admin_token) {
                (Some(file), _) => Some(std::fs::read_to_string(file).with_context(|| {
                    format!("cannot read the admin token from {}", file.display())
                })?),
                (None, token) => token.clone(),
            };
        let tls = self
            .tls_cert
            .clone()
            .zip(self.tls_key.clone())
            .map(|(cert, key)| TlsOptions {
                cert,
                key,
                client_ca: self.client_ca.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        Ok(ControlPlaneOptions {
            config_dir: self.config.clone(),
            xds: self.xds,
            admin: Some(self.admin),
            admin_token,
            source: DirectorySourceOptions {
                debounce: Duration::from_millis(self.debounce_ms),
                debounce_max: Duration::from_millis(self.debounce_max_ms),
                settle: DirectorySourceOptions::default().settle,
                max_file_size: self.max_file_size,
                allow_empty: self.allow_empty,
            },
            tls,
            xds_limits: self.xds_limits.limits(),
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = args.options()?;
    args.xds_limits.warn_about_descriptors();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let mut stop = ShutdownSignal::install()?;
        let control_plane = tokio::select! {
            started = ControlPlane::start(options) => started?,
            () = stop.recv() => {
                tracing::info!("stopped while starting");
                return Ok(ExitCode::SUCCESS);
            }
        };
        tracing::info!(config = %args.config.display(), "watching the spec directory; Ctrl-C to stop");
        stop.recv().await;
        tracing::info!("shutting down");
        control_plane.shutdown(SHUTDOWN_GRACE).await;
        Ok(ExitCode::SUCCESS)
    });
    leave_runtime(runtime);
    outcome
}

/// How long open xDS streams and the servers get to finish after a stop request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
