//! The command line: one file per subcommand, each a thin layer over the library. The only place that
//! uses `anyhow`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod bootstrap;
pub mod certs;
pub mod delete;
pub mod demo;
pub mod inputs;
pub mod logging;
pub mod output;
pub mod proxy_config;
pub mod proxy_status;
pub mod serve;
pub mod served;
pub mod server_admin;
pub mod signal;
pub mod top;
pub mod validate;
pub mod xds_limits;

/// Switchyard: Istio's traffic management API for stock Envoy, without Istio.
///
/// Write VirtualService, DestinationRule, Gateway, ServiceEntry and WorkloadEntry YAML (Istio's own
/// `networking.istio.io/v1` format) into a directory; Switchyard translates them into Envoy configuration
/// and streams it to every connected Envoy over ADS.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub logging: logging::LoggingArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane: watch the spec directory and serve xDS to Envoy.
    Serve(serve::Args),
    /// Check spec files and print Istio-analyze-style diagnostics.
    Validate(validate::Args),
    /// Add or replace resources in the spec directory (like `kubectl apply -f`).
    Apply(apply::Args),
    /// Remove resources from the spec directory (like `kubectl delete -f`).
    Delete(delete::Args),
    /// Print an Envoy bootstrap for a workload's sidecar or for an ingress gateway.
    Bootstrap(bootstrap::Args),
    /// Mint a CA, Switchyard's certificate and one certificate per proxy, for xDS over mutual TLS.
    Certs(certs::Args),
    /// Show the connected proxies and whether each is in sync (asks a running server).
    ProxyStatus(proxy_status::Args),
    /// Show what one Envoy runs: its clusters, listeners, routes or endpoints (asks the Envoy).
    ProxyConfig(proxy_config::Args),
    /// Watch the mesh live: request rate, traffic share, success rate and faults per service and subset, from
    /// the Envoys' own stats, and each proxy's sync state.
    Top(top::Args),
    /// Run Bookinfo behind real Envoy sidecars and a gateway, configured by Switchyard.
    Demo(demo::Args),
}

/// The same words wherever a spec directory is missing (`apply`'s, from [`crate::spec::edit`]): where a new user
/// runs a command outside the repository root, "cannot read config:0" would not say what to do.
pub(crate) fn ensure_spec_dir(dir: &std::path::Path, how_to_pass: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.is_dir(),
        "spec directory `{}` does not exist or is not a directory (create it, or pass {how_to_pass})",
        dir.display()
    );
    Ok(())
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        logging::init(&self.logging)?;
        match self.command {
            Command::Serve(args) => serve::run(args),
            Command::Validate(args) => validate::run(args),
            Command::Apply(args) => apply::run(args),
            Command::Delete(args) => delete::run(args),
            Command::Bootstrap(args) => bootstrap::run(args),
            Command::Certs(args) => certs::run(args),
            Command::ProxyStatus(args) => proxy_status::run(args),
            Command::ProxyConfig(args) => proxy_config::run(args),
            Command::Demo(args) => demo::run(args),
            Command::Top(args) => top::run(args),
        }
    }
}
