//! `switchyard top`: what the mesh is doing now, read from the Envoys' own admin stats. Envoy's counters only
//! go up, so every figure is a difference between two readings over a sliding window: per service and subset
//! the request rate, its share of the service's traffic and its success rate; per proxy its sync state (from
//! Switchyard's `/debug/proxies`) and the faults it injected.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::output::Output;
use super::proxy_status::sync_state;
use super::server_admin::{self, AdminArgs, ServerAdmin};
use crate::envoy::{AdminClient, Stats};
use crate::mesh::node_metadata_keys as keys;
use crate::node_id::short_name;
use crate::topology::ADMIN_PORT;
use crate::xds::status::{latest_per_node, TypeStatus};
use crate::xds::ResourceType;

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

/// One reading of every Envoy.
struct Reading {
    at: Instant,
    /// Per Envoy admin address, its counters (absent if it did not answer).
    stats: BTreeMap<SocketAddr, Option<Stats>>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Snapshot {
    pub window_seconds: f64,
    pub services: Vec<SubsetRow>,
    pub proxies: Vec<ProxyRow>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SubsetRow {
    pub service: String,
    /// The subset (`v1`), or `-` for the service as a whole.
    pub subset: String,
    pub requests: u64,
    pub rps: f64,
    /// Of the service's requests in the window, the fraction that went to this subset.
    pub share: Option<f64>,
    /// Fraction of answered requests that were not 5xx.
    pub success_rate: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ProxyRow {
    pub proxy: String,
    pub envoy_admin: Option<SocketAddr>,
    /// SYNCED / STALE / REJECTED / NOT SENT over all types, or DISCONNECTED when Switchyard does not know it.
    pub sync: String,
    /// Whether its Envoy answered the latest reading.
    pub reachable: bool,
    pub aborts_injected: u64,
    pub delays_injected: u64,
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
        let mut readings: VecDeque<Reading> = VecDeque::new();
        let mut proxies = read_proxies(&admin).await?;
        let addresses = envoy_addresses(&args.envoy_admin, &proxies);
        anyhow::ensure!(
            !addresses.is_empty(),
            "no Envoy to read: no proxy is connected to Switchyard at {}; give --envoy-admin ADDR",
            admin.addr()
        );
        readings.push_back(read(&addresses).await);
        loop {
            tokio::time::sleep(interval).await;
            proxies = read_proxies(&admin).await?;
            readings.push_back(read(&addresses).await);
            while readings
                .get(1)
                .zip(readings.back())
                .is_some_and(|(second, last)| last.at.duration_since(second.at) >= window)
            {
                readings.pop_front();
            }
            let (Some(first), Some(last)) = (readings.front(), readings.back()) else {
                continue;
            };
            let snapshot = snapshot(first, last, &proxies, args.service.as_deref());
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

async fn read(addresses: &[SocketAddr]) -> Reading {
    let reads = addresses.iter().map(|addr| async move {
        let stats = match AdminClient::new(*addr) {
            Ok(client) => client.stats().await.ok(),
            Err(_) => None,
        };
        (*addr, stats)
    });
    let stats = futures::future::join_all(reads).await.into_iter().collect();
    Reading {
        at: Instant::now(),
        stats,
    }
}

/// The given addresses, or each connected proxy's pod IP (its first `INSTANCE_IPS`) on Envoy's admin port.
fn envoy_addresses(given: &[SocketAddr], proxies: &[ProxyView]) -> Vec<SocketAddr> {
    if !given.is_empty() {
        return given.to_vec();
    }
    proxies
        .iter()
        .filter_map(ProxyView::pod_ip)
        .map(|ip| SocketAddr::new(ip, ADMIN_PORT))
        .collect()
}

/// The admin endpoint's JSON for one proxy, as far as this view needs it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ProxyView {
    stream: u64,
    node_id: String,
    #[serde(default)]
    metadata: serde_json::Value,
    #[serde(default)]
    types: BTreeMap<ResourceType, TypeStatus>,
}

impl ProxyView {
    fn pod_ip(&self) -> Option<IpAddr> {
        self.metadata[keys::INSTANCE_IPS]
            .as_str()?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The worst state over its types.
    fn sync(&self) -> &'static str {
        let states: Vec<&str> = self.types.values().map(sync_state).collect();
        ["REJECTED", "STALE", "NOT SENT"]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or(if states.is_empty() {
                "NOT SENT"
            } else {
                "SYNCED"
            })
    }
}

/// The figures between two readings.
fn snapshot(
    first: &Reading,
    last: &Reading,
    proxies: &[ProxyView],
    service: Option<&str>,
) -> Snapshot {
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    let delta = |addr: &SocketAddr, name: &str| -> u64 {
        let value = |r: &Reading| {
            r.stats
                .get(addr)
                .and_then(Option::as_ref)
                .and_then(|s| s.get(name).copied())
        };
        // A counter missing from the first reading is new: everything it counted happened in the window.
        match value(last) {
            Some(now) => now.saturating_sub(value(first).unwrap_or(0)),
            None => 0,
        }
    };

    // Per (service, subset): (requests, 5xx), summed over the callers' outbound clusters.
    let mut counts: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (addr, stats) in &last.stats {
        for name in stats.iter().flat_map(|s| s.keys()) {
            let Some(cluster) = name
                .strip_prefix("cluster.")
                .and_then(|n| n.strip_suffix(".upstream_rq_total"))
            else {
                continue;
            };
            let Some((host, subset)) = outbound_cluster(cluster) else {
                continue;
            };
            let entry = counts.entry((host, subset)).or_default();
            entry.0 += delta(addr, name);
            entry.1 += delta(addr, &format!("cluster.{cluster}.upstream_rq_5xx"));
        }
    }
    let mut per_service: BTreeMap<&str, u64> = BTreeMap::new();
    for ((host, _), (requests, _)) in &counts {
        *per_service.entry(host).or_default() += requests;
    }
    let services = counts
        .iter()
        .filter(|((host, _), _)| service.is_none_or(|s| host == s || short_service(host) == s))
        .map(|((host, subset), (requests, errors))| SubsetRow {
            service: host.clone(),
            subset: subset.clone(),
            requests: *requests,
            rps: if seconds > 0.0 {
                *requests as f64 / seconds
            } else {
                0.0
            },
            share: ratio(*requests, per_service[host.as_str()]),
            success_rate: ratio(requests - errors.min(requests), *requests),
        })
        .collect();

    let fault_total = |addr: &SocketAddr, what: &str| -> u64 {
        last.stats
            .get(addr)
            .and_then(Option::as_ref)
            .map(|s| {
                s.keys()
                    .filter(|n| n.ends_with(what))
                    .map(|n| delta(addr, n))
                    .sum()
            })
            .unwrap_or(0)
    };
    let by_ip: BTreeMap<IpAddr, &ProxyView> = proxies
        .iter()
        .filter_map(|p| Some((p.pod_ip()?, p)))
        .collect();
    let mut rows: BTreeMap<String, ProxyRow> = BTreeMap::new();
    for (addr, stats) in &last.stats {
        let proxy = by_ip.get(&addr.ip());
        let name = proxy.map_or_else(|| addr.to_string(), |p| short_name(&p.node_id));
        rows.insert(
            name.clone(),
            ProxyRow {
                proxy: name,
                envoy_admin: Some(*addr),
                sync: proxy.map_or("DISCONNECTED", |p| p.sync()).to_string(),
                reachable: stats.is_some(),
                aborts_injected: fault_total(addr, ".fault.aborts_injected"),
                delays_injected: fault_total(addr, ".fault.delays_injected"),
            },
        );
    }
    for p in proxies {
        let name = short_name(&p.node_id);
        rows.entry(name.clone()).or_insert_with(|| ProxyRow {
            proxy: name,
            envoy_admin: None,
            sync: p.sync().to_string(),
            reachable: false,
            aborts_injected: 0,
            delays_injected: 0,
        });
    }
    Snapshot {
        window_seconds: seconds,
        services,
        proxies: rows.into_values().collect(),
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// `outbound|9080|v1|reviews.default.svc.cluster.local` → (`reviews.default.svc.cluster.local`, `v1`); the
/// subsetless cluster is `-`. Inbound clusters are left out: each call is counted once, at its caller.
fn outbound_cluster(name: &str) -> Option<(String, String)> {
    let mut parts = name.split('|');
    let (Some("outbound"), Some(_port), Some(subset), Some(host), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let subset = if subset.is_empty() { "-" } else { subset };
    Some((host.to_string(), subset.to_string()))
}

fn short_service(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, addr: SocketAddr, stats: &[(&str, u64)]) -> Reading {
        let stats = stats.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        Reading {
            at,
            stats: BTreeMap::from([(addr, Some(stats))]),
        }
    }

    #[test]
    fn rates_shares_and_faults_come_from_deltas() {
        let addr: SocketAddr = "127.0.1.1:15000".parse().unwrap();
        let v1 = "cluster.outbound|9080|v1|reviews.default.svc.cluster.local";
        let v3 = "cluster.outbound|9080|v3|reviews.default.svc.cluster.local";
        let t0 = Instant::now();
        let first = reading(
            t0,
            addr,
            &[
                (&format!("{v1}.upstream_rq_total"), 100),
                (&format!("{v3}.upstream_rq_total"), 0),
                ("http.outbound.fault.aborts_injected", 7),
            ],
        );
        let last = reading(
            t0 + Duration::from_secs(10),
            addr,
            &[
                (&format!("{v1}.upstream_rq_total"), 130),
                (&format!("{v3}.upstream_rq_total"), 10),
                (&format!("{v3}.upstream_rq_5xx"), 1),
                (
                    "cluster.inbound|9080||reviews.default.svc.cluster.local.upstream_rq_total",
                    99,
                ),
                ("http.outbound.fault.aborts_injected", 9),
            ],
        );
        let s = snapshot(&first, &last, &[], Some("reviews"));
        assert_eq!(s.services.len(), 2, "inbound clusters are not counted");
        let (a, b) = (&s.services[0], &s.services[1]);
        assert_eq!((a.subset.as_str(), a.requests), ("v1", 30));
        assert_eq!((b.subset.as_str(), b.requests), ("v3", 10));
        assert_eq!(a.share, Some(0.75));
        assert_eq!(b.success_rate, Some(0.9));
        assert!((a.rps - 3.0).abs() < 1e-9);
        assert_eq!(s.proxies[0].aborts_injected, 2);
        assert_eq!(s.proxies[0].sync, "DISCONNECTED");
        assert!(snapshot(&first, &last, &[], Some("ratings"))
            .services
            .is_empty());
    }
}
