//! `switchyard top`: what the mesh is doing now, read from the Envoys' own admin stats: per service and subset
//! the request rate, its share of the service's traffic and its success rate; per proxy its sync state (from
//! Switchyard's `/debug/proxies`) and the faults it injected. The window and the figures are
//! [`crate::traffic`]'s, the same the admin endpoint's dashboard shows; this is the terminal around them.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::output::Output;
use super::server_admin::{self, AdminArgs, ServerAdmin};
use crate::traffic::{envoy_addresses, read, ProxyView, Snapshot, Window};
use crate::xds::status::latest_per_node;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    switchyard top\n  \
    switchyard top reviews                      # one service\n  \
    switchyard top -o json --once               # one machine-readable snapshot")]
pub struct Args {
    /// Only this service: its short name (`reviews`) or host (`reviews.default.svc.cluster.local`).
    pub service: Option<String>,
    /// An Envoy admin address to read (repeatable). Default: each connected proxy's pod IP on port 15000.
    #[arg(long = "envoy-admin")]
    pub envoy_admin: Vec<SocketAddr>,
    /// Seconds between readings.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Seconds of history the rates are computed over.
    #[arg(long, default_value_t = 10.0)]
    pub window: f64,
    /// Print one snapshot (after one interval) and exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.interval > 0.0 && args.window >= args.interval,
        "--interval must be positive and --window at least one interval"
    );
    let admin = ServerAdmin::new(&args.admin)?;
    let interval = Duration::from_secs_f64(args.interval);
    let window = Duration::from_secs_f64(args.window);
    server_admin::runtime()?.block_on(async {
        let mut readings = Window::new(window);
        let mut proxies = read_proxies(&admin).await?;
        let addresses = envoy_addresses(&args.envoy_admin, &proxies);
        anyhow::ensure!(
            !addresses.is_empty(),
            "no Envoy to read: no proxy is connected to Switchyard at {}; give --envoy-admin ADDR",
            admin.addr()
        );
        readings.push(read(&addresses).await);
        loop {
            tokio::time::sleep(interval).await;
            proxies = read_proxies(&admin).await?;
            readings.push(read(&addresses).await);
            let Some(snapshot) = readings.snapshot(&proxies, args.service.as_deref()) else {
                continue;
            };
            if args.output.structured() {
                args.output.print(&snapshot)?;
            } else {
                // Home, clear: a plain ANSI redraw.
                print!("\x1b[H\x1b[2J{}", render(&snapshot));
            }
            if args.once {
                return Ok(ExitCode::SUCCESS);
            }
        }
    })
}

async fn read_proxies(admin: &ServerAdmin) -> anyhow::Result<Vec<ProxyView>> {
    let proxies: Vec<ProxyView> = admin.get("/debug/proxies").await.with_context(|| {
        format!(
            "cannot read Switchyard's admin endpoint at {}; is `switchyard serve` running?",
            admin.addr()
        )
    })?;
    Ok(latest_per_node(proxies, |p| (&p.node_id, p.stream))
        .into_values()
        .collect())
}

fn percent(f: Option<f64>) -> String {
    f.map_or_else(|| "-".to_string(), |f| format!("{:.0}%", f * 100.0))
}

fn render(s: &Snapshot) -> String {
    let mut out = format!(
        "switchyard top: last {:.0}s\n\n{:<40} {:<8} {:>8} {:>7} {:>8}\n",
        s.window_seconds, "SERVICE", "SUBSET", "RPS", "SHARE", "SUCCESS"
    );
    for r in &s.services {
        out.push_str(&format!(
            "{:<40} {:<8} {:>8.1} {:>7} {:>8}\n",
            r.service,
            r.subset,
            r.rps,
            percent(r.share),
            percent(r.success_rate)
        ));
    }
    out.push_str(&format!(
        "\n{:<28} {:<22} {:<12} {:>7} {:>7}\n",
        "PROXY", "ENVOY ADMIN", "SYNC", "ABORTS", "DELAYS"
    ));
    for p in &s.proxies {
        let admin = match (p.envoy_admin, p.reachable) {
            (Some(a), true) => a.to_string(),
            (Some(a), false) => format!("{a} (down)"),
            (None, _) => "-".to_string(),
        };
        out.push_str(&format!(
            "{:<28} {:<22} {:<12} {:>7} {:>7}\n",
            p.proxy, admin, p.sync, p.aborts_injected, p.delays_injected
        ));
    }
    out
}
