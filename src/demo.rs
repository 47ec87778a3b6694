//! `switchyard demo`: Bookinfo behind real Envoy sidecars and an ingress gateway, all configured by
//! Switchyard, on loopback.
//!
//! Each workload of the spec directory becomes a "pod" (see [`crate::topology`]): the Bookinfo stand-in
//! app on the pod's app address, and an Envoy sidecar whose whole configuration comes over ADS. The
//! ingress gateway is one more Envoy on 127.0.0.1. The apps run in this process; the Envoys are child
//! processes killed when the demo is dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::certs::{self, CertDir, CertsError, MintOptions};
use crate::control_plane::{read_mesh, ControlPlane, ControlPlaneOptions, StartError};
use crate::envoy::private_dir::PrivateDir;
use crate::envoy::{
    BootstrapOptions, EnvoyError, EnvoyProcess, NodeIdentity, ProcessOptions, XdsClientTls, XdsMode,
};
use crate::mesh::{labels_match, Mesh, Workload};
use crate::source::DirectorySourceOptions;
use crate::topology::{self, TopologyError, ADMIN_PORT};
use crate::xds::identity::DEFAULT_TRUST_DOMAIN;

/// How long the demo waits for every Envoy to be ready and in sync.
const CONVERGE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub config_dir: PathBuf,
    pub mode: XdsMode,
    pub envoy: PathBuf,
    pub xds: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub gateway_ip: IpAddr,
    pub source: DirectorySourceOptions,
    pub envoy_log_level: String,
    /// xDS over mutual TLS: a CA and a certificate per proxy are minted at start, and each Envoy may only
    /// ask for its own configuration.
    pub mtls: bool,
    /// Where the certificates go (an existing CA there is kept). Default: a private temporary directory,
    /// removed with the demo.
    pub certs_dir: Option<PathBuf>,
}

impl DemoOptions {
    pub fn new(config_dir: impl Into<PathBuf>, envoy: impl Into<PathBuf>) -> DemoOptions {
        DemoOptions {
            config_dir: config_dir.into(),
            mode: XdsMode::Sotw,
            envoy: envoy.into(),
            xds: crate::control_plane::DEFAULT_XDS,
            admin: Some(crate::control_plane::DEFAULT_ADMIN),
            gateway_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            source: DirectorySourceOptions::default(),
            envoy_log_level: "warning".to_string(),
            mtls: false,
            certs_dir: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the spec directory {} is invalid:\n{}", dir.display(), diagnostics.join("\n"))]
    InvalidConfig {
        dir: PathBuf,
        diagnostics: Vec<String>,
    },
    #[error(transparent)]
    ControlPlane(#[from] StartError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("workload {workload} is not a Bookinfo workload: {reason}")]
    NotBookinfo { workload: String, reason: String },
    #[error("cannot bind {what} to {addr}: {source}")]
    Bind {
        what: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Envoy { what: String, source: EnvoyError },
    #[error("cannot mint the demo's certificates: {0}")]
    Certs(#[from] CertsError),
    #[error("cannot create a directory for the demo's certificates: {0}")]
    CertsDir(std::io::Error),
}

/// The demo's certificates; the temporary directory, when there is one, goes with the demo.
struct DemoCerts {
    dir: CertDir,
    _private: Option<PrivateDir>,
}

impl DemoCerts {
    /// The CA, Switchyard's certificate, and one certificate per workload and for the gateway.
    fn mint(options: &DemoOptions, mesh: &Mesh) -> Result<DemoCerts, DemoError> {
        let (dir, private) = match &options.certs_dir {
            // Absolute: the paths go into bootstraps of Envoys that run in directories of their own.
            Some(dir) => (
                CertDir::new(std::path::absolute(dir).map_err(DemoError::CertsDir)?),
                None,
            ),
            None => {
                let private = PrivateDir::create(&std::env::temp_dir(), "switchyard-demo-certs-")
                    .map_err(DemoError::CertsDir)?;
                (CertDir::new(private.path()), Some(private))
            }
        };
        let gateway = topology::ingress_gateway(options.gateway_ip);
        let proxies = mesh
            .workloads
            .values()
            .map(|w| (w.namespace.clone(), w.name.clone()))
            .chain([(gateway.namespace, gateway.name)])
            .collect();
        certs::mint(
            &dir,
            &MintOptions {
                trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
                validity_days: 1,
                server_names: certs::default_server_names(),
                proxies,
            },
        )?;
        Ok(DemoCerts {
            dir,
            _private: private,
        })
    }

    fn client_tls(&self, namespace: &str, name: &str) -> XdsClientTls {
        let files = self.dir.proxy(namespace, name);
        XdsClientTls {
            cert_chain: files.cert_chain,
            key: files.key,
            root_cert: files.root_cert,
            server_name: certs::SERVER_NAME.to_string(),
        }
    }
}

/// One Envoy of the demo.
#[derive(Debug)]
pub struct DemoProxy {
    /// The workload name, or the gateway deployment name.
    pub name: String,
    pub node_id: String,
    pub process: EnvoyProcess,
}

/// A running demo. Dropping it kills the Envoys and stops the apps and the control plane.
pub struct Demo {
    /// Always `Some` until `shutdown` takes it.
    control_plane: Option<ControlPlane>,
    proxies: Vec<DemoProxy>,
    apps: Vec<JoinHandle<()>>,
    stop_apps: watch::Sender<bool>,
    gateway_url: String,
    certs: Option<DemoCerts>,
}

impl Demo {
    pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
        let mesh = read_mesh(std::slice::from_ref(&options.config_dir))
            .map_err(|diagnostics| DemoError::InvalidConfig {
                dir: options.config_dir.clone(),
                diagnostics: diagnostics.iter().map(|d| d.to_string()).collect(),
            })?
            .mesh;
        let certs = options
            .mtls
            .then(|| DemoCerts::mint(&options, &mesh))
            .transpose()?;
        let control_plane = ControlPlane::start(ControlPlaneOptions {
            config_dir: options.config_dir.clone(),
            xds: options.xds,
            admin: options.admin,
            admin_token: None,
            source: options.source.clone(),
            tls: certs
                .as_ref()
                .map(|c| c.dir.tls_options(DEFAULT_TRUST_DOMAIN)),
            xds_limits: Default::default(),
        })
        .await?;

        let (stop_apps, stopped) = watch::channel(false);
        let mut demo = Demo {
            control_plane: Some(control_plane),
            proxies: Vec::new(),
            apps: Vec::new(),
            stop_apps,
            gateway_url: String::new(),
            certs,
        };
        for workload in mesh.workloads.values() {
            demo.start_pod(&options, &mesh, workload, stopped.clone())
                .await?;
        }
        demo.start_gateway(&options, &mesh).await?;
        demo.wait_in_sync().await?;
        Ok(demo)
    }

    async fn start_pod(
        &mut self,
        options: &DemoOptions,
        mesh: &Mesh,
        workload: &Workload,
        stopped: watch::Receiver<bool>,
    ) -> Result<(), DemoError> {
        let (sidecar, addresses) =
            topology::sidecar(mesh, &workload.namespace, &workload.name, None, None)?;
        let not_bookinfo = |reason: String| DemoError::NotBookinfo {
            workload: workload.name.clone(),
            reason,
        };
        let service: bookinfo::Service = workload
            .labels
            .get("app")
            .ok_or_else(|| not_bookinfo("it has no `app` label".to_string()))?
            .parse()
            .map_err(|e: bookinfo::UnknownService| not_bookinfo(e.to_string()))?;
        let version = workload
            .labels
            .get("version")
            .cloned()
            .unwrap_or_else(|| "v1".to_string());
        let port = app_port(workload);
        let app = bookinfo::AppConfig::new(
            service,
            version,
            workload.name.clone(),
            SocketAddr::new(addresses.outbound, port),
        );
        // Fails early (before anything listens) on a version the stand-in does not implement.
        let _checked = bookinfo::router(&app).map_err(|e| not_bookinfo(e.to_string()))?;
        let app_addr = SocketAddr::new(addresses.app, port);
        let listener = TcpListener::bind(app_addr)
            .await
            .map_err(|source| DemoError::Bind {
                what: format!("the {} app", workload.name),
                addr: app_addr,
                source,
            })?;
        let name = workload.name.clone();
        let mut stopped = stopped;
        self.apps.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = bookinfo::serve_with_shutdown(app, listener, shutdown).await {
                tracing::error!(app = %name, "{e}");
            }
        }));
        self.start_envoy(
            options,
            workload.name.clone(),
            NodeIdentity::sidecar(&sidecar),
            addresses.admin(),
            &workload.namespace,
        )
        .await
    }

    async fn start_gateway(&mut self, options: &DemoOptions, mesh: &Mesh) -> Result<(), DemoError> {
        let gateway = topology::ingress_gateway(options.gateway_ip);
        let port = mesh
            .gateways
            .values()
            .filter(|g| labels_match(&g.selector, &gateway.labels))
            .flat_map(|g| g.servers.iter().map(|s| s.port))
            .min()
            .unwrap_or(8080);
        self.gateway_url = format!("http://{}:{port}/productpage", options.gateway_ip);
        let admin = SocketAddr::new(options.gateway_ip, ADMIN_PORT);
        self.start_envoy(
            options,
            gateway.name.clone(),
            NodeIdentity::gateway(&gateway),
            admin,
            &gateway.namespace,
        )
        .await
    }

    async fn start_envoy(
        &mut self,
        options: &DemoOptions,
        name: String,
        node: NodeIdentity,
        admin: SocketAddr,
        namespace: &str,
    ) -> Result<(), DemoError> {
        let node_id = node.id.clone();
        let bootstrap = BootstrapOptions {
            node,
            admin,
            xds: self.control_plane().xds_addr(),
            mode: options.mode,
            tls: self.certs.as_ref().map(|c| c.client_tls(namespace, &name)),
        };
        let envoy_error = |source| DemoError::Envoy {
            what: format!("the Envoy of {name}"),
            source,
        };
        let yaml = bootstrap.to_yaml().map_err(envoy_error)?;
        let process_options = ProcessOptions {
            log_level: options.envoy_log_level.clone(),
            ..ProcessOptions::default()
        };
        let process = EnvoyProcess::start(&options.envoy, &yaml, &process_options)
            .await
            .map_err(envoy_error)?;
        self.proxies.push(DemoProxy {
            name,
            node_id,
            process,
        });
        Ok(())
    }

    /// Waits until every Envoy is ready, connected, and has accepted its listeners and routes.
    async fn wait_in_sync(&self) -> Result<(), DemoError> {
        let deadline = Instant::now() + CONVERGE;
        for proxy in &self.proxies {
            let envoy_error = |source| DemoError::Envoy {
                what: format!("the Envoy of {}", proxy.name),
                source,
            };
            proxy
                .process
                .wait_ready(deadline.saturating_duration_since(Instant::now()))
                .await
                .map_err(envoy_error)?;
            proxy
                .process
                .wait_until("a connected, warmed-up Envoy", deadline, |stats| {
                    let get = |k: &str| stats.get(k).copied().unwrap_or(0);
                    let seen = format!(
                        "connected_state={} lds.update_success={} warming_clusters={}",
                        get("control_plane.connected_state"),
                        get("listener_manager.lds.update_success"),
                        get("cluster_manager.warming_clusters")
                    );
                    (get("control_plane.connected_state") == 1
                        && get("listener_manager.lds.update_success") >= 1
                        && get("cluster_manager.warming_clusters") == 0)
                        .then_some(())
                        .ok_or(seen)
                })
                .await
                .map_err(envoy_error)?;
        }
        Ok(())
    }

    pub fn control_plane(&self) -> &ControlPlane {
        match &self.control_plane {
            Some(cp) => cp,
            None => {
                unreachable!("the control plane is only taken by shutdown, which consumes the demo")
            }
        }
    }

    /// The certificates directory, when the demo runs with mutual TLS.
    pub fn certs_dir(&self) -> Option<&CertDir> {
        self.certs.as_ref().map(|c| &c.dir)
    }

    pub fn proxies(&self) -> &[DemoProxy] {
        &self.proxies
    }

    pub fn proxy(&self, name: &str) -> Option<&DemoProxy> {
        self.proxies.iter().find(|p| p.name == name)
    }

    /// `http://127.0.0.1:8080/productpage` for Bookinfo's Gateway.
    pub fn productpage_url(&self) -> &str {
        &self.gateway_url
    }

    /// What a person needs to know once the demo runs.
    pub fn describe(&self, config_dir: &Path) -> String {
        let mut out = String::new();
        out.push_str(&format!("Bookinfo is up: {}\n\n", self.productpage_url()));
        out.push_str("Envoy admin (stats, config_dump):\n");
        for p in &self.proxies {
            out.push_str(&format!(
                "  {:<22} http://{}/\n",
                p.name,
                p.process.admin_address()
            ));
        }
        if let Some(admin) = self.control_plane().admin_addr() {
            out.push_str(&format!(
                "\nSwitchyard: xDS {}, admin http://{admin}/ (live dashboard; /metrics, /debug/proxies, /debug/config)\n",
                self.control_plane().xds_addr()
            ));
        }
        if let Some(certs) = self.certs_dir() {
            out.push_str(&format!(
                "xDS over mutual TLS; certificates in {} (one directory per proxy)\n",
                certs.root().display()
            ));
        }
        out.push_str(&format!(
            "Spec directory: {}\n  edit it, or: switchyard apply -f ../shared/istio-bookinfo/virtual-service-all-v1.yaml\n",
            config_dir.display()
        ));
        out
    }

    /// Stops the Envoys, the apps and the control plane, in that order.
    pub async fn shutdown(mut self) {
        for proxy in self.proxies.drain(..) {
            drop(proxy);
        }
        self.stop_apps.send_replace(true);
        for app in self.apps.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), app).await;
        }
        if let Some(control_plane) = self.control_plane.take() {
            control_plane.shutdown(Duration::from_secs(2)).await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_apps.send_replace(true);
        for app in &self.apps {
            app.abort();
        }
    }
}

/// The port the app listens on: the workload's first port, Bookinfo's 9080 otherwise.
fn app_port(workload: &Workload) -> u16 {
    workload
        .ports
        .values()
        .next()
        .and_then(|p| u16::try_from(*p).ok())
        .unwrap_or(9080)
}
