//! The nebucloud-xds peer of `xds-load`: see main.rs.

pub mod recording;
pub mod snapshots;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use xds_cache::ShardedCache;
use xds_server::XdsServerBuilder;

/// Serves ADS (SotW and Delta, as nebucloud does) from `cache` on `addr` until `shutdown` fires. Nothing
/// else: no health service, no metrics, no connection tracking (the `services` nebucloud always adds beside
/// ADS, CDS/LDS/RDS/EDS/SDS, are idle: the proxies speak ADS only).
pub async fn serve(
    cache: Arc<ShardedCache>,
    addr: SocketAddr,
    shutdown: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let server = XdsServerBuilder::new()
        .cache(cache)
        .enable_sotw()
        .enable_delta()
        .disable_health_check()
        .disable_metrics()
        .disable_connection_tracking()
        // The bench ends the peer by closing its stdin or killing it; there is nothing to drain.
        .graceful_shutdown(Duration::ZERO)
        .build()
        .context("build the nebucloud server")?;
    server
        .serve_with_shutdown(addr, shutdown)
        .await
        .with_context(|| format!("serve on {addr}"))
}
