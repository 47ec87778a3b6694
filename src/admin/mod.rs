//! The loopback admin endpoint. It holds no state of its own: everything it shows is read from the proxy
//! registry, the config status and the cache at request time.
//!
//! | path | what |
//! |---|---|
//! | `/` | a page linking the rest ([`index`]) |
//! | `/healthz` | 200 while the process runs |
//! | `/ready` | 200 once a configuration has been accepted, 503 before |
//! | `/metrics` | OpenMetrics text ([`metrics`]): gauges, counters and histograms |
//! | `/debug/config` | the config status: revision, errors and warnings of the latest reading |
//! | `/debug/proxies` | connected proxies and, per type, what was sent, acknowledged and rejected |
//! | `/debug/snapshot?proxy=<name>` | the resources (names and versions) that proxy is being served; the proxy by node id, `name.namespace` or `name` |
//!
//! JSON answers are indented: people read them with curl.
//!
//! Who may ask is decided in [`guard`]: loopback `Host`s only on loopback, a bearer token elsewhere.

pub mod guard;
mod index;
mod metrics;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use guard::{AccessError, AdminAccess};
pub use metrics::ConfigMetrics;
pub use status::ConfigStatus;

use crate::node_id::names_proxy;
use crate::xds::{AdsServer, Cache, ProxyRegistry, ProxyStatus, TlsCounters};

#[derive(Clone)]
pub struct AdminState {
    pub registry: ProxyRegistry,
    pub status: watch::Receiver<ConfigStatus>,
    pub cache: Cache,
    /// Refused TLS handshakes and streams, certificate reloads (zero without TLS).
    pub tls: Arc<TlsCounters>,
    pub access: AdminAccess,
    /// The xDS server, for its open connections and queued response bytes (`None` in tests without one).
    pub ads: Option<AdsServer>,
    /// What the pipeline records (the xDS server's own histograms are in the registry's counters).
    pub config_metrics: ConfigMetrics,
}

pub fn router(state: AdminState) -> Router {
    let registry = Arc::new(metrics::registry(&state));
    Router::new()
        .route("/", get(index::page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics::render(&registry) }
            }),
        )
        .route("/debug/config", get(config))
        .route("/debug/proxies", get(proxies))
        .route("/debug/snapshot", get(snapshot))
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            guard::check,
        ))
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn ready(State(state): State<AdminState>) -> Response {
    if state.status.borrow().accepted_revision.is_some() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid configuration yet\n",
        )
            .into_response()
    }
}

/// Indented JSON.
fn pretty(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(mut text) => {
            text.push('\n');
            ([(header::CONTENT_TYPE, "application/json")], text).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn config(State(state): State<AdminState>) -> Response {
    let status: ConfigStatus = state.status.borrow().clone();
    pretty(&status)
}

async fn proxies(State(state): State<AdminState>) -> Response {
    pretty(&state.registry.list())
}

#[derive(Deserialize)]
struct SnapshotQuery {
    proxy: String,
}

async fn snapshot(State(state): State<AdminState>, Query(q): Query<SnapshotQuery>) -> Response {
    // While a reconnect overlaps the old stream, the newest one is the proxy as it is now.
    let named: Vec<ProxyStatus> = state
        .registry
        .latest_per_node()
        .into_values()
        .filter(|p| names_proxy(&p.node_id, &q.proxy))
        .collect();
    let proxy = match <[ProxyStatus; 1]>::try_from(named) {
        Ok([proxy]) => proxy,
        Err(named) if named.is_empty() => {
            return (
                StatusCode::NOT_FOUND,
                format!("no connected proxy is named {:?}\n", q.proxy),
            )
                .into_response()
        }
        Err(named) => {
            let ids: Vec<&str> = named.iter().map(|p| p.node_id.as_str()).collect();
            return (
                StatusCode::CONFLICT,
                format!(
                    "{:?} names {} proxies: {}\n",
                    q.proxy,
                    ids.len(),
                    ids.join(", ")
                ),
            )
                .into_response();
        }
    };
    let node = proxy.node();
    match state.cache.current().snapshot_for(&node) {
        Ok(snapshot) => pretty(&snapshot.listing()),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

/// Where an admin endpoint ended up listening.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
