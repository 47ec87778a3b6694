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
}
