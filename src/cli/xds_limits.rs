//! `serve`'s limits of the xDS port: what any one client may make the server hold (`xds::XdsLimits`).

use std::time::Duration;

use crate::xds::XdsLimits;

const DEFAULTS: XdsLimits = XdsLimits::DEFAULT;

/// Each refusal is a gRPC status the client sees and a count in `switchyard_xds_refused_total{reason}`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Limits of the xDS port")]
pub struct XdsLimitArgs {
    /// Open xDS connections; a connection beyond is closed at once (reason="connections").
    #[arg(long, value_name = "N", default_value_t = DEFAULTS.max_connections)]
    pub xds_max_connections: usize,
    /// ADS streams open at once on one connection; one more is refused with RESOURCE_EXHAUSTED
    /// (reason="streams_per_connection").
    #[arg(long, value_name = "N", default_value_t = DEFAULTS.max_streams_per_connection,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub xds_max_streams_per_connection: u32,
    /// The largest request message; a larger one ends its stream with RESOURCE_EXHAUSTED
    /// (reason="request_size").
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULTS.max_request_bytes)]
    pub xds_max_request_bytes: usize,
    /// The largest node (id, metadata and the rest, encoded); a larger one ends its stream with
    /// INVALID_ARGUMENT before it is stored anywhere (reason="node_size").
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULTS.max_node_bytes)]
    pub xds_max_node_bytes: usize,
    /// Resource names in one request, and subscribed to per type on one stream; more ends the stream with
    /// INVALID_ARGUMENT (reason="resource_names").
    #[arg(long, value_name = "N", default_value_t = DEFAULTS.max_resource_names)]
    pub xds_max_resource_names: usize,
    /// Response bytes queued for proxies and not yet taken by the transport, across all streams; over it, the
    /// stream that has gone longest without reading is ended with RESOURCE_EXHAUSTED (reason="pending_bytes").
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULTS.max_pending_bytes)]
    pub xds_max_pending_bytes: usize,
    /// Seconds a connection may carry no ADS stream (never sent a request, never finished its TLS
    /// handshake, or all its streams ended) before it is closed (reason="idle_connection").
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULTS.idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub xds_idle_timeout: u64,
}

impl XdsLimitArgs {
    pub fn limits(&self) -> XdsLimits {
        XdsLimits {
            max_connections: self.xds_max_connections,
            max_streams_per_connection: self.xds_max_streams_per_connection,
            max_request_bytes: self.xds_max_request_bytes,
            max_node_bytes: self.xds_max_node_bytes,
            max_resource_names: self.xds_max_resource_names,
            max_pending_bytes: self.xds_max_pending_bytes,
            idle_timeout: Duration::from_secs(self.xds_idle_timeout),
        }
    }

    /// Warns when the connection limit does not fit under the process's file descriptor limit: past that, the
    /// accept loop fails before the limit is reached, and the admin endpoint and spec files starve with it.
    pub fn warn_about_descriptors(&self) {
        let Some(open_files) = soft_open_files_limit() else {
            return;
        };
        // Spec files, certificates, the admin endpoint and the runtime need some of their own.
        let needed = self.xds_max_connections.saturating_add(DESCRIPTOR_HEADROOM);
        if needed > open_files {
            tracing::warn!(
                max_connections = self.xds_max_connections,
                open_files,
                "--xds-max-connections does not fit under the file descriptor limit (ulimit -n) with {DESCRIPTOR_HEADROOM} \
                 to spare: lower it, or raise the limit"
            );
        }
    }
}

/// Descriptors kept for everything but xDS connections.
const DESCRIPTOR_HEADROOM: usize = 256;

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` where it cannot be read.
fn soft_open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
