//! Where the Envoys are and one reading of their counters.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use tokio::time::Instant;

use super::figures::{counts, Reading, STATS_FILTER};
use super::proxy::ProxyView;
use crate::envoy::{AdminClient, Stats};
use crate::topology::ADMIN_PORT;

/// At most this many Envoys are read per reading: a bound on what a reading costs and holds, far above a mesh
/// one machine's dashboard is for.
pub const MAX_ENVOYS: usize = 256;
/// At most this many counters are kept of one Envoy (a few per outbound cluster it has).
pub const MAX_COUNTERS: usize = 20_000;
/// A longer answer to the filtered `/stats` is not read (20,000 counters as JSON take about 2 MB).
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// The given addresses, or each connected proxy's pod IP on Envoy's admin port (each address once, at most
/// [`MAX_ENVOYS`]).
pub fn envoy_addresses(given: &[SocketAddr], proxies: &[ProxyView]) -> Vec<SocketAddr> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let addresses: BTreeSet<SocketAddr> = proxies
        .iter()
        .filter_map(ProxyView::pod_ip)
        .map(|ip| SocketAddr::new(ip, ADMIN_PORT))
        .collect();
    addresses.into_iter().take(MAX_ENVOYS).collect()
}

/// Every Envoy's counters at once, as far as the figures use them.
pub async fn read(addresses: &[SocketAddr]) -> Reading {
    let reads = addresses.iter().map(|addr| async move {
        let stats = match AdminClient::new(*addr) {
            Ok(client) => client
                .with_body_limit(MAX_ANSWER_BYTES)
                .stats_matching(Some(STATS_FILTER))
                .await
                .ok(),
            Err(_) => None,
        };
        (*addr, stats.map(kept))
    });
    let stats = futures::future::join_all(reads).await.into_iter().collect();
    Reading {
        at: Instant::now(),
        stats,
    }
}

/// What the figures use, whatever the Envoy (or whatever answers at its address) sent.
fn kept(stats: Stats) -> Stats {
    stats
        .into_iter()
        .filter(|(name, _)| counts(name))
        .take(MAX_COUNTERS)
        .collect()
}
