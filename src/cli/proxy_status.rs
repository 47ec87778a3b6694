//! `switchyard proxy-status`: every connected proxy and whether it runs what it was sent, like
//! `istioctl proxy-status`. Reads a running server's admin endpoint.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::control_plane::DEFAULT_ADMIN;
use crate::xds::status::TypeStatus;
use crate::xds::ResourceType;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The admin endpoint of the running Switchyard.
    #[arg(long, default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let proxies: Vec<serde_json::Value> = runtime.block_on(async {
        let url = format!("http://{}/debug/proxies", args.admin);
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach Switchyard's admin endpoint at {url}; is `switchyard serve` running?"))?;
        response
            .error_for_status()?
            .json()
            .await
            .context("unexpected answer from the admin endpoint")
    })?;
    print!("{}", render(&proxies));
    Ok(ExitCode::SUCCESS)
}

/// One line per proxy: its id and, per type, SYNCED / NOT SENT / STALE (sent, not yet acknowledged) /
/// REJECTED (NACK), with the error of the last rejection underneath.
pub fn render(proxies: &[serde_json::Value]) -> String {
    let views: Vec<ProxyView> = proxies
        .iter()
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect();
    let width = views
        .iter()
        .map(|p| p.node_id.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = format!(
        "{:<width$} {:<6} {:<9} {:<9} {:<9} {:<9}\n",
        "NAME", "MODE", "CDS", "EDS", "LDS", "RDS"
    );
    for p in &views {
        let state = |t: ResourceType| p.types.get(&t).map(sync_state).unwrap_or("NOT SENT");
        out.push_str(&format!(
            "{:<width$} {:<6} {:<9} {:<9} {:<9} {:<9}\n",
            p.node_id,
            p.mode.to_lowercase(),
            state(ResourceType::Cluster),
            state(ResourceType::Endpoint),
            state(ResourceType::Listener),
            state(ResourceType::Route),
        ));
        if let Some(e) = &p.identity_error {
            out.push_str(&format!("    not served: {e}\n"));
        }
        for (t, s) in &p.types {
            if let (true, Some(nack)) = (s.rejected, &s.last_nack) {
                out.push_str(&format!("    {t} rejected: {}\n", nack.message.trim()));
            }
        }
    }
    out
}

fn sync_state(s: &TypeStatus) -> &'static str {
    if s.rejected {
        "REJECTED"
    } else if s.sent_version.is_none() {
        "NOT SENT"
    } else if s.sent_version == s.acked_version {
        "SYNCED"
    } else {
        "STALE"
    }
}

/// The admin endpoint's JSON for one proxy, as far as this view needs it.
#[derive(serde::Deserialize)]
struct ProxyView {
    node_id: String,
    mode: String,
    identity_error: Option<String>,
    types: std::collections::BTreeMap<ResourceType, TypeStatus>,
}
