//! The running control plane: spec source → resolve → per-proxy translation → xDS cache, plus the xDS and
//! admin servers. Each stage is a task between two `watch` channels; the logic lives in the stages' pure
//! functions.

mod generation;
mod pipeline;
mod shared;

pub use generation::MeshGeneration;
pub use pipeline::Pipeline;

pub use crate::admin::ConfigStatus;

pub use crate::source::read_mesh;

pub use crate::mesh::fingerprint;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, AccessError, AdminAccess, AdminState, ConfigMetrics};
use crate::source::{DirectorySource, DirectorySourceOptions, Source, WatchError};
use crate::traffic::{LiveTraffic, Settings as TrafficSettings};
use crate::xds::tls::TlsError;
use crate::xds::{
    AdsServer, Cache, NoConfig, ProxyRegistry, ServeError, TlsCounters, TlsOptions, XdsLimits,
    XdsTls,
};

#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    pub config_dir: PathBuf,
    pub xds: SocketAddr,
    /// `None`: no admin endpoint.
    pub admin: Option<SocketAddr>,
    /// Required of every admin request but the probes; required to bind the admin endpoint beyond
    /// loopback.
    pub admin_token: Option<String>,
    pub source: DirectorySourceOptions,
    /// `None`: plaintext xDS.
    pub tls: Option<TlsOptions>,
    /// What any client may make the xDS port hold.
    pub xds_limits: XdsLimits,
}

impl ControlPlaneOptions {
    pub fn new(config_dir: impl Into<PathBuf>) -> ControlPlaneOptions {
        ControlPlaneOptions {
            config_dir: config_dir.into(),
            xds: DEFAULT_XDS,
            admin: Some(DEFAULT_ADMIN),
            admin_token: None,
            source: DirectorySourceOptions::default(),
            tls: None,
            xds_limits: XdsLimits::default(),
        }
    }
}

/// istiod's plaintext xDS port.
pub const DEFAULT_XDS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 15010);
/// istiod's monitoring port.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 15014);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("spec directory {} does not exist or is not a directory", .0.display())]
    NoConfigDir(PathBuf),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Xds(#[from] ServeError),
    #[error("cannot bind the admin endpoint to {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    AdminAccess(#[from] AccessError),
    #[error("xDS TLS: {0}")]
    Tls(#[from] TlsError),
}

/// A running control plane. Dropping it stops everything at once, open xDS streams included (each proxy
/// sees its stream end and reconnects to whichever server comes next); [`ControlPlane::shutdown`] does the
/// same and also waits, within a grace period, for the servers to finish.
pub struct ControlPlane {
    xds_addr: SocketAddr,
    /// A handle on the xDS service: tonic's per-connection tasks hold clones of it and outlive the server
    /// task, so streams are ended through it rather than by aborting that task.
    ads: AdsServer,
    admin_addr: Option<SocketAddr>,
    registry: ProxyRegistry,
    cache: Cache,
    tls: Option<XdsTls>,
    status: watch::Receiver<ConfigStatus>,
    shutdown: Option<oneshot::Sender<()>>,
    /// The xDS and admin servers: they finish once told to shut down.
    servers: Vec<JoinHandle<()>>,
    /// The pipeline and the shutdown relay: they run until aborted.
    background: Vec<JoinHandle<()>>,
    _source: DirectorySource,
}

impl ControlPlane {
    /// Reads the spec directory and publishes what it holds, then binds the servers and starts serving;
    /// returns once both listen. A proxy connecting as soon as the xDS port is open is therefore served the
    /// configuration at once (or, if the directory is invalid, told why not).
    pub async fn start(options: ControlPlaneOptions) -> Result<ControlPlane, StartError> {
        if !options.config_dir.is_dir() {
            return Err(StartError::NoConfigDir(options.config_dir));
        }
        // Read by its absolute path: what is served then fingerprints the same for any client that reads the
        // same directory (`apply` checks the server took its change that way), from wherever it runs.
        let spec_dir = std::fs::canonicalize(&options.config_dir)
            .unwrap_or_else(|_| options.config_dir.clone());
        // Before anything runs: bad certificates or an unprotected admin address fail the start.
        let admin_access = options
            .admin
            .map(|addr| AdminAccess::for_address(addr, options.admin_token.as_deref()))
            .transpose()?;
        let tls_counters = Arc::new(TlsCounters::default());
        let tls = options
            .tls
            .clone()
            .map(|tls| XdsTls::load(tls, tls_counters.clone()))
            .transpose()?;
        let source = {
            let (dir, source_options) = (spec_dir.clone(), options.source.clone());
            // The first reading happens inside `start`: file I/O and resolution, off the async workers.
            match tokio::task::spawn_blocking(move || DirectorySource::start(&dir, source_options))
                .await
            {
                Ok(source) => source?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        };
        let cache = Cache::new(Arc::new(NoConfig));
        let registry = ProxyRegistry::default();
        let (status_tx, status) = watch::channel(ConfigStatus {
            spec_dir: Some(spec_dir),
            ..ConfigStatus::default()
        });
        let mut states = source.subscribe();
        let first = states.borrow_and_update().clone();
        let config_metrics = ConfigMetrics::default();
        let mut pipeline = Pipeline::new(cache.clone(), status_tx, config_metrics.clone());
        pipeline.apply(&first).await;
        let mut background = Vec::new();
        let mut servers = Vec::new();
        background.push(tokio::spawn(pipeline.run(states)));

        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (closing_tx, closing) = watch::channel(false);
        background.push(tokio::spawn(async move {
            let _ = shutdown_rx.await;
            closing_tx.send_replace(true);
        }));
        let closed = move || {
            let mut closing = closing.clone();
            async move {
                let _ = closing.wait_for(|c| *c).await;
            }
        };

        let listener = AdsServer::bind(options.xds).await?;
        let xds_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: options.xds,
            source,
        })?;
        let ads =
            AdsServer::with_limits(cache.clone(), registry.clone(), options.xds_limits.clone());
        let server = ads.clone();
        let xds_shutdown = closed();
        if let Some(tls) = &tls {
            background.push(tls.watch()?);
        }
        let server_tls = tls.clone();
        servers.push(tokio::spawn(async move {
            let served = match &server_tls {
                Some(tls) => server.serve_tls(listener, tls, xds_shutdown).await,
                None => server.serve(listener, xds_shutdown).await,
            };
            if let Err(e) = served {
                tracing::error!("{e}");
            }
        }));
        let security = match &options.tls {
            None => "plaintext",
            Some(TlsOptions {
                client_ca: None, ..
            }) => "TLS",
            Some(_) => "mutual TLS, proxies bound to their certificates' SPIFFE IDs",
        };
        tracing::info!(%xds_addr, security, "xDS server listening (ADS: State-of-the-World and Delta)");

        let admin_addr = match options.admin.zip(admin_access) {
            None => None,
            Some((addr, access)) => {
                let listener = admin::bind(addr)
                    .await
                    .map_err(|source| StartError::Admin { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| StartError::Admin { addr, source })?;
                let state = AdminState {
                    registry: registry.clone(),
                    status: status.clone(),
                    cache: cache.clone(),
                    tls: tls_counters.clone(),
                    access,
                    ads: Some(ads.clone()),
                    traffic: LiveTraffic::new(registry.clone(), TrafficSettings::default()),
                    config_metrics: config_metrics.clone(),
                };
                let admin_shutdown = closed();
                servers.push(tokio::spawn(async move {
                    if let Err(e) = admin::serve(listener, state, admin_shutdown).await {
                        tracing::error!("admin endpoint failed: {e}");
                    }
                }));
                tracing::info!(admin_addr = %bound, "admin endpoint listening");
                Some(bound)
            }
        };

        Ok(ControlPlane {
            xds_addr,
            ads,
            admin_addr,
            registry,
            cache,
            tls,
            status,
            shutdown: Some(shutdown_tx),
            servers,
            background,
            _source: source,
        })
    }

    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn registry(&self) -> &ProxyRegistry {
        &self.registry
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The xDS server (its open connections, for instance).
    pub fn ads(&self) -> &AdsServer {
        &self.ads
    }

    /// The xDS server's TLS (certificate in use, counters), when it has any.
    pub fn tls(&self) -> Option<&XdsTls> {
        self.tls.as_ref()
    }

    /// The config status; `changed()` on it resolves at every reading of the specs.
    pub fn status(&self) -> watch::Receiver<ConfigStatus> {
        self.status.clone()
    }

    /// Stops accepting, ends every xDS stream (proxies keep their config and reconnect to the next
    /// server), and waits for the servers to finish, at most `grace`.
    pub async fn shutdown(mut self, grace: Duration) {
        // Streams first: the server's own shutdown waits for open connections, which only end with them.
        self.ads.close_streams();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let servers = std::mem::take(&mut self.servers);
        let _ = tokio::time::timeout(grace, async {
            for task in servers {
                let _ = task.await;
            }
        })
        .await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Aborting the server task stops accepting but leaves established connections served by tonic's
        // own tasks; ending the streams is what makes the proxies let go.
        self.ads.close_streams();
        for task in self.servers.iter().chain(&self.background) {
            task.abort();
        }
    }
}
