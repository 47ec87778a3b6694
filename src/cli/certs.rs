//! `switchyard certs`: a CA, Switchyard's certificate and one certificate per proxy, for xDS over mutual
//! TLS (`serve --tls-cert --tls-key --client-ca`, `bootstrap --certs`, `demo --mtls`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::bootstrap::{load_mesh, split_name};
use super::output::Output;
use crate::certs::{self, CertDir, MintOptions};
use crate::topology;
use crate::xds::identity::DEFAULT_TRUST_DOMAIN;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where the certificates go: `ca/`, `switchyard/` and one `<name>.<namespace>/` per proxy. A CA already
    /// there is kept, so re-running re-issues certificates that proxies already trust.
    #[arg(long, default_value = "certs")]
    pub out: PathBuf,
    /// The spec directory: every WorkloadEntry in it gets a sidecar certificate (unless --workload or
    /// --gateway names the proxies).
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// Only this sidecar (repeatable): NAME or NAME.NAMESPACE (namespace `default`).
    #[arg(long, value_name = "NAME[.NAMESPACE]")]
    pub workload: Vec<String>,
    /// Only this gateway (repeatable): NAME or NAME.NAMESPACE (namespace `istio-system`). Default, with the
    /// workloads: `istio-ingressgateway.istio-system`.
    #[arg(long, value_name = "NAME[.NAMESPACE]")]
    pub gateway: Vec<String>,
    /// The trust domain of the SPIFFE IDs (`spiffe://<trust domain>/ns/<namespace>/sa/<name>`).
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// How long the issued certificates are valid (the CA: ten years).
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// DNS names and IPs of Switchyard's certificate (repeatable). Default: switchyard, localhost,
    /// 127.0.0.1. Envoy checks the name `bootstrap --xds-server-name` gives (default `switchyard`).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut proxies: Vec<(String, String)> = Vec::new();
    for workload in &args.workload {
        let (name, namespace) = split_name(workload, "default");
        proxies.push((namespace.to_string(), name.to_string()));
    }
    for gateway in &args.gateway {
        let (name, namespace) = split_name(gateway, "istio-system");
        proxies.push((namespace.to_string(), name.to_string()));
    }
    if proxies.is_empty() {
        let mesh = load_mesh(&args.config)?;
        proxies.extend(
            mesh.workloads
                .values()
                .map(|w| (w.namespace.clone(), w.name.clone())),
        );
        let gateway = topology::ingress_gateway(std::net::Ipv4Addr::LOCALHOST.into());
        proxies.push((gateway.namespace, gateway.name));
    }
    let server_names = if args.server_names.is_empty() {
        certs::default_server_names()
    } else {
        args.server_names.clone()
    };
    let dir = CertDir::new(&args.out);
    let minted = certs::mint(
        &dir,
        &MintOptions {
            trust_domain: args.trust_domain.clone(),
            validity_days: args.days,
            server_names,
            proxies,
        },
    )?;
    let server = dir.server();
    if args.output.structured() {
        let holders: Vec<serde_json::Value> = minted
            .iter()
            .map(|m| {
                let holder_dir = m.files.cert_chain.parent().unwrap_or(dir.root());
                serde_json::json!({ "holder": m.holder, "dir": holder_dir })
            })
            .collect();
        args.output.print(&serde_json::json!({
            "certificates": holders,
            "server": {
                "cert_chain": server.cert_chain,
                "key": server.key,
                "client_ca": server.root_cert,
            },
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for m in &minted {
        let holder_dir = m.files.cert_chain.parent().unwrap_or(dir.root());
        println!("{:<55} {}", m.holder, holder_dir.display());
    }
    println!(
        "\nswitchyard serve --tls-cert {} --tls-key {} --client-ca {}",
        server.cert_chain.display(),
        server.key.display(),
        server.root_cert.display()
    );
    println!(
        "switchyard bootstrap --workload <name> --certs {}",
        dir.root().display()
    );
    Ok(ExitCode::SUCCESS)
}
