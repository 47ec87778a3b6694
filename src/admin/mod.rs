//! The loopback admin endpoint. It holds no state of its own: everything it shows is read from the proxy
//! registry, the config status and the cache at request time.
//!
//! | path | what |
//! |---|---|
//! | `/` | the dashboard ([`index`]): services and subsets with their live traffic split and error rates, each proxy's sync state, the spec's diagnostics, links to the rest; `/dashboard.js` and `/dashboard.css` are its script and style |
//! | `/healthz` | 200 while the process runs |
//! | `/ready` | 200 once a configuration has been accepted, 503 before |
//! | `/metrics` | OpenMetrics text ([`metrics`]): gauges, counters and histograms |
//! | `/debug/config` | the config status: revision, errors and warnings of the latest reading |
//! | `/debug/proxies` | connected proxies and, per type, what was sent, acknowledged and rejected |
//! | `/debug/traffic` | what `switchyard top -o json` shows, from a window the server keeps only while this is asked for ([`crate::traffic::LiveTraffic`]) |
//! | `/debug/snapshot?proxy=<name>` | the resources that proxy is being served, as JSON with their versions ([`snapshot`]); `&resources=false`: only names and versions |
//!
//! JSON answers are indented: people read them with curl.
//!
//! Who may ask is decided in [`guard`]: loopback `Host`s only on loopback, a bearer token elsewhere.

pub mod guard;
mod index;
mod metrics;
pub mod render;
mod snapshot;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use guard::{AccessError, AdminAccess};
pub use metrics::ConfigMetrics;
pub use status::ConfigStatus;

use crate::traffic::LiveTraffic;
use crate::xds::{AdsServer, Cache, ProxyRegistry, TlsCounters};

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
    /// The dashboard's traffic figures, read from the Envoys only while someone asks for them.
    pub traffic: LiveTraffic,
    /// What the pipeline records (the xDS server's own histograms are in the registry's counters).
    pub config_metrics: ConfigMetrics,
}

pub fn router(state: AdminState) -> Router {
    let registry = Arc::new(metrics::registry(&state));
    Router::new()
        .route("/", get(index::page))
        .route("/dashboard.js", get(index::script))
        .route("/dashboard.css", get(index::style))
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
        .route("/debug/snapshot", get(snapshot::snapshot))
        .route("/debug/traffic", get(traffic))
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
    // The first reader of a newly accepted mesh hashes it (tens of ms at 10,000 workloads): off the workers
    // that run the xDS streams.
    if let Some(fingerprint) = status
        .accepted_fingerprint
        .clone()
        .filter(|f| !f.is_computed())
    {
        let _ = tokio::task::spawn_blocking(move || {
            fingerprint.get();
        })
        .await;
    }
    pretty(&status)
}

async fn proxies(State(state): State<AdminState>) -> Response {
    pretty(&state.registry.list())
}

async fn traffic(State(state): State<AdminState>) -> Response {
    pretty(&state.traffic.snapshot())
}

/// Where an admin endpoint ended up listening.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
