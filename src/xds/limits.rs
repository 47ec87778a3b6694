//! What any one client may make the xDS port hold, and the counters of what was refused.
//!
//! Every limit answers with a status the client sees (or, for a connection, by closing it) and is counted in
//! `switchyard_xds_refused_total{reason}`. The defaults are far above what a real mesh needs: an Envoy's node is
//! a few KB, its requests name at most a few thousand resources, and it opens one ADS stream per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The limits of the xDS port (`switchyard serve --xds-max-...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsLimits {
    /// Open connections; a connection beyond is closed at once.
    pub max_connections: usize,
    /// ADS streams open at once on one connection (also HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_streams_per_connection: u32,
    /// The largest request message, decoded size (`RESOURCE_EXHAUSTED`).
    pub max_request_bytes: usize,
    /// The largest node (id, metadata and the rest), encoded (`INVALID_ARGUMENT`).
    pub max_node_bytes: usize,
    /// Resource names in one request, and subscribed per type on one stream (`INVALID_ARGUMENT`).
    pub max_resource_names: usize,
    /// Response bytes queued for proxies and not yet taken by the transport, across all streams. Over it, the
    /// stream that has gone longest without reading is ended (`RESOURCE_EXHAUSTED`).
    pub max_pending_bytes: usize,
    /// How long a connection may stay without an ADS stream: one that never sends a request (or never finishes
    /// its TLS handshake), or whose streams all ended, is closed after it.
    pub idle_timeout: Duration,
}

impl XdsLimits {
    pub const DEFAULT: XdsLimits = XdsLimits {
        max_connections: 10_000,
        max_streams_per_connection: 100,
        max_request_bytes: 4 << 20,
        max_node_bytes: 64 << 10,
        max_resource_names: 10_000,
        max_pending_bytes: 256 << 20,
        idle_timeout: Duration::from_secs(10),
    };
}

impl Default for XdsLimits {
    fn default() -> XdsLimits {
        XdsLimits::DEFAULT
    }
}

/// Why a connection or a stream was refused or ended by a limit: the `reason` label of
/// `switchyard_xds_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Connections,
    StreamsPerConnection,
    RequestSize,
    NodeSize,
    ResourceNames,
    PendingBytes,
    IdleConnection,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::Connections,
        Limit::StreamsPerConnection,
        Limit::RequestSize,
        Limit::NodeSize,
        Limit::ResourceNames,
        Limit::PendingBytes,
        Limit::IdleConnection,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::StreamsPerConnection => "streams_per_connection",
            Limit::RequestSize => "request_size",
            Limit::NodeSize => "node_size",
            Limit::ResourceNames => "resource_names",
            Limit::PendingBytes => "pending_bytes",
            Limit::IdleConnection => "idle_connection",
        }
    }
}

/// Refusals by limit since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct LimitCounters([AtomicU64; Limit::ALL.len()]);

impl LimitCounters {
    pub fn refused(&self, limit: Limit) {
        self.0[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, limit: Limit) -> u64 {
        self.0[limit as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_its_own_counter_and_label() {
        let counters = LimitCounters::default();
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(
                limit as usize, i,
                "ALL lists the variants in declaration order"
            );
            counters.refused(limit);
            assert_eq!(counters.get(limit), 1);
        }
        let mut labels: Vec<&str> = Limit::ALL.iter().map(|l| l.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Limit::ALL.len());
    }
}
