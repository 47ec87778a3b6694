//! `switchyard bootstrap`: the Envoy bootstrap for one proxy, so nobody writes one by hand.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::output::{Format, Output};
use crate::certs::{self, CertDir};
use crate::control_plane::{read_mesh, DEFAULT_XDS};
use crate::envoy::{BootstrapOptions, NodeIdentity, XdsClientTls, XdsMode};
use crate::mesh::Mesh;
use crate::topology::{self, ADMIN_PORT};

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("proxy").required(true).args(["workload", "gateway"])))]
pub struct Args {
    /// The sidecar of this WorkloadEntry: NAME or NAME.NAMESPACE (namespace `default`).
    #[arg(long, value_name = "NAME[.NAMESPACE]")]
    pub workload: Option<String>,
    /// An ingress gateway deployment: NAME or NAME.NAMESPACE (namespace `istio-system`), e.g.
    /// `istio-ingressgateway`.
    #[arg(long, value_name = "NAME[.NAMESPACE]")]
    pub gateway: Option<String>,
    /// Labels of the gateway deployment, which Gateway selectors match (repeatable, KEY=VALUE).
    /// Default: `istio=ingressgateway` and `app=istio-ingressgateway`, as Istio installs it.
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "gateway")]
    pub labels: Vec<String>,
    /// The gateway's IP: its listeners and admin bind here.
    #[arg(long, default_value = "127.0.0.1", requires = "gateway")]
    pub gateway_ip: IpAddr,
    /// Where the sidecar's inbound cluster sends (the app's own listener). Default: by the loopback
    /// layout, pod IP 127.X.Y.1 → 127.X.Y.2.
    #[arg(long, requires = "workload")]
    pub app_ip: Option<IpAddr>,
    /// Where the sidecar's outbound listeners bind (the app sends its calls there). Default: by the
    /// loopback layout, pod IP 127.X.Y.1 → 127.X.Y.3.
    #[arg(long, requires = "workload")]
    pub outbound_ip: Option<IpAddr>,
    /// The spec directory the workload is defined in.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// The Switchyard xDS address Envoy connects to.
    #[arg(long, default_value_t = DEFAULT_XDS)]
    pub xds: SocketAddr,
    /// Use incremental (Delta) xDS instead of State-of-the-World.
    #[arg(long)]
    pub delta: bool,
    /// Envoy's admin address. Default: the proxy's IP, port 15000.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Connect over mutual TLS with the certificates `switchyard certs --out DIR` minted: this proxy's
    /// `<name>.<namespace>/` (its certificate, key and the CA).
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// The name Switchyard's certificate must carry (sent as SNI).
    #[arg(long, default_value = certs::SERVER_NAME, requires = "certs")]
    pub xds_server_name: String,
    /// `-o json` for a JSON bootstrap (Envoy reads either); YAML otherwise.
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mesh = load_mesh(&args.config)?;
    let options = bootstrap_options(&args, &mesh)?;
    match args.output.format() {
        Format::Json => args.output.print(&options.to_value())?,
        Format::Text | Format::Yaml => print!("{}", options.to_yaml()?),
    }
    Ok(ExitCode::SUCCESS)
}

fn bootstrap_options(args: &Args, mesh: &Mesh) -> anyhow::Result<BootstrapOptions> {
    let mode = if args.delta {
        XdsMode::Delta
    } else {
        XdsMode::Sotw
    };
    let (node, ip, (namespace, name)) = if let Some(workload) = &args.workload {
        let (name, namespace) = split_name(workload, "default");
        let (sidecar, addresses) =
            topology::sidecar(mesh, namespace, name, args.app_ip, args.outbound_ip)?;
        (
            NodeIdentity::sidecar(&sidecar),
            addresses.pod,
            (namespace.to_string(), name.to_string()),
        )
    } else if let Some(gateway) = &args.gateway {
        let (name, namespace) = split_name(gateway, "istio-system");
        let mut node = topology::ingress_gateway(args.gateway_ip);
        node.name = name.to_string();
        node.namespace = namespace.to_string();
        if !args.labels.is_empty() {
            node.labels = parse_labels(&args.labels)?;
        }
        if topology::gateways_selecting(mesh, &node.labels).is_empty() {
            eprintln!(
                "warning: no Gateway in {} selects the labels {:?}; this gateway will get no listeners",
                args.config.display(),
                node.labels
            );
        }
        let names = (node.namespace.clone(), node.name.clone());
        (NodeIdentity::gateway(&node), args.gateway_ip, names)
    } else {
        bail!("give --workload or --gateway");
    };
    Ok(BootstrapOptions {
        node,
        admin: args.admin.unwrap_or(SocketAddr::new(ip, ADMIN_PORT)),
        xds: args.xds,
        mode,
        tls: args
            .certs
            .as_deref()
            .map(|dir| client_tls(dir, &namespace, &name, &args.xds_server_name))
            .transpose()?,
    })
}

/// The proxy's files in a `switchyard certs` directory, as absolute paths (Envoy may run elsewhere).
fn client_tls(
    dir: &Path,
    namespace: &str,
    name: &str,
    server_name: &str,
) -> anyhow::Result<XdsClientTls> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("cannot make {} absolute", dir.display()))?;
    let files = CertDir::new(&dir).proxy(namespace, name);
    if !files.exist() {
        bail!(
            "{} has no certificate for {name}.{namespace}; run `switchyard certs --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    Ok(XdsClientTls {
        cert_chain: files.cert_chain,
        key: files.key,
        root_cert: files.root_cert,
        server_name: server_name.to_string(),
    })
}

/// `name.namespace` → (`name`, `namespace`); a bare name gets `default_namespace`. The split is at the last
/// dot: a namespace (a DNS label) has none, while a resource name may.
pub(crate) fn split_name<'a>(text: &'a str, default_namespace: &'a str) -> (&'a str, &'a str) {
    text.rsplit_once('.').unwrap_or((text, default_namespace))
}

fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--label {l:?} is not KEY=VALUE"))
        })
        .collect()
}

/// Loads and resolves a spec directory, failing with every diagnostic when it is invalid.
pub fn load_mesh(dir: &Path) -> anyhow::Result<Arc<Mesh>> {
    super::ensure_spec_dir(dir, "--config DIR")?;
    match read_mesh(&[dir.to_path_buf()]) {
        Ok(resolved) => Ok(resolved.mesh),
        Err(diagnostics) => {
            let lines: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
            bail!("{}\n{} is invalid", lines.join("\n"), dir.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(
            split_name("reviews-v2", "default"),
            ("reviews-v2", "default")
        );
        assert_eq!(
            split_name("reviews-v2.shop", "default"),
            ("reviews-v2", "shop")
        );
        assert_eq!(
            split_name("reviews.v2.shop", "default"),
            ("reviews.v2", "shop")
        );
        let labels = parse_labels(&["istio=ingressgateway".to_string()]).unwrap();
        assert_eq!(labels["istio"], "ingressgateway");
        assert!(parse_labels(&["nope".to_string()]).is_err());
    }
}
