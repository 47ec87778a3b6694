//! A stand-in for Istio's Bookinfo sample: productpage, details, reviews v1–v3 and ratings, with the
//! observable behaviour of the real services (texts, JSON shapes, hard-coded timeouts and retries, header
//! propagation) that the Istio tasks depend on.
//!
//! Every outgoing call keeps the service's own URL and `Host` (e.g. `http://reviews:9080/reviews/0`) but is
//! connected to the pod's sidecar outbound address, the way iptables capture would deliver it.
#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

mod details;
mod error;
mod outbound;
mod productpage;
mod propagation;
mod ratings;
mod reviews;
mod service;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;

pub use error::{Error, UnknownService};
pub use service::Service;
pub use upstream::{Upstream, Upstreams};

/// How one Bookinfo workload runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    pub service: Service,
    /// `v1`, `v2`, `v3`; which ones exist depends on the service (see [`Service::versions`]).
    pub version: String,
    /// What the real pods report as `$HOSTNAME` (reviews puts it in `podname`).
    pub pod_name: String,
    /// The sidecar's outbound listener. Every outgoing connection goes to this IP; the port used is the
    /// upstream's port from the URL (9080 unless overridden), exactly as reqwest's `resolve` works.
    pub outbound: SocketAddr,
    /// Where the service believes its upstreams live (`details:9080`, ...).
    pub upstreams: Upstreams,
    /// reviews' `$CLUSTER_NAME`; `None` renders as the string `null`, like the real service.
    pub cluster_name: Option<String>,
}

impl AppConfig {
    /// A workload with the default upstream names (`details`, `reviews`, `ratings`, port 9080).
    pub fn new(
        service: Service,
        version: impl Into<String>,
        pod_name: impl Into<String>,
        outbound: SocketAddr,
    ) -> Self {
        Self {
            service,
            version: version.into(),
            pod_name: pod_name.into(),
            outbound,
            upstreams: Upstreams::default(),
            cluster_name: None,
        }
    }
}

/// Builds the HTTP application for `config` without binding anything.
pub fn router(config: &AppConfig) -> Result<axum::Router, Error> {
    config.service.check_version(&config.version)?;
    match config.service {
        Service::Productpage => productpage::router(config),
        Service::Details => Ok(details::router()),
        Service::Reviews => reviews::router(config),
        Service::Ratings => Ok(ratings::router()),
    }
}

/// Serves `config` on `listener` until the process ends.
pub async fn serve(config: AppConfig, listener: tokio::net::TcpListener) -> Result<(), Error> {
    serve_with_shutdown(config, listener, std::future::pending()).await
}

/// Serves `config` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve_with_shutdown(
    config: AppConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let app = router(&config)?;
    tracing::info!(
        service = %config.service,
        version = %config.version,
        pod = %config.pod_name,
        listen = ?listener.local_addr().ok(),
        outbound = %config.outbound,
        "bookinfo workload serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve {
            service: config.service,
            source,
        })
}
