//! Real Envoys in place of the simulated proxies (`--envoys`): one per workload, each bootstrapped as
//! `switchyard bootstrap` would (the same `BootstrapOptions`), connected to the Switchyard of the run. After
//! every Envoy has acknowledged its configuration, the weight shift is applied and the time until each Envoy
//! it reaches (every one unscoped; with `--sidecar-egress`, those whose `Sidecar` sees the service) has
//! acknowledged a new route version is read from Switchyard's `/debug/proxies`, the way an operator would.
//! Those reads are the latencies' resolution and share the cores with the Envoys, so each Envoy's own record
//! of when it applied the new routes (its `rds.*.config_reload_time_ms` gauge, read once the run is over) is reported
//! beside them, with the CPU the Envoys spent on the change.
//!
//! Every Envoy is an `EnvoyProcess`: killed and reaped when dropped, also when the run fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use switchyard::envoy::{BootstrapOptions, EnvoyProcess, NodeIdentity, ProcessOptions, XdsMode};
use switchyard::meshgen::Change;

use crate::client::Mode;
use crate::process;

/// Envoys started at once: each start reads its bootstrap and waits for its admin listener.
const START_CONCURRENCY: usize = 8;
/// How often `/debug/proxies` is read while waiting: the resolution of the latencies.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Serialize)]
pub struct EnvoyRun {
    pub envoys: usize,
    pub started_s: f64,
    /// From the first Envoy's start until every one has acknowledged every type.
    pub synced_s: f64,
    pub change: String,
    /// The Envoys the change should reach (the others should keep their routes).
    pub affected: usize,
    /// Envoys the change should not reach whose route version moved all the same.
    pub unaffected_moved: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub converged: usize,
    /// Envoys whose route configuration was reloaded after the rename (the percentiles below are over them).
    pub applied: usize,
    /// From the rename to each Envoy's own `rds.*.config_reload_time_ms` (milliseconds since the epoch, the same clock).
    pub applied_p50_ms: f64,
    pub applied_p99_ms: f64,
    pub applied_max_ms: f64,
    pub cpu_s: Option<f64>,
    /// What the Envoys together spent from the rename until the last acknowledged.
    pub envoys_cpu_s: Option<f64>,
    /// What the Envoys together spend per second when nothing changes.
    pub envoys_idle_cpu_per_s: Option<f64>,
    pub empty_rss_kb: Option<u64>,
    pub idle_rss_kb: Option<u64>,
    pub rss_per_envoy_kb: Option<f64>,
}

/// What `/debug/proxies` says about one stream, as far as convergence needs.
#[derive(Debug, Deserialize)]
struct ProxyView {
    node_id: String,
    stream: u64,
    types: BTreeMap<String, TypeView>,
}

#[derive(Debug, Deserialize)]
struct TypeView {
    sent_version: Option<String>,
    acked_version: Option<String>,
}

impl ProxyView {
    /// The route version it runs, when it has acknowledged the latest response of every type.
    fn settled_routes(&self) -> Option<&str> {
        let settled = self.types.len() == 4
            && self
                .types
                .values()
                .all(|t| t.acked_version.is_some() && t.acked_version == t.sent_version);
        settled
            .then(|| self.types.get("Route")?.acked_version.as_deref())
            .flatten()
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    nodes: &[(usize, NodeIdentity)],
    affected: &BTreeSet<usize>,
    xds: SocketAddr,
    admin: SocketAddr,
    pid: Option<u32>,
    mode: Mode,
    dir: &std::path::Path,
    change: &Change,
    deadline: Duration,
) -> anyhow::Result<EnvoyRun> {
    let binary = switchyard::envoy::find_or_install(None).context("no Envoy binary")?;
    let debug = reqwest::Client::new();
    let url = format!("http://{admin}/debug/proxies");
    let empty_rss_kb = pid.and_then(|p| process::memory_kb(p).ok()).map(|m| m.0);
    let xds_mode = match mode {
        Mode::Sotw => XdsMode::Sotw,
        Mode::Delta => XdsMode::Delta,
    };
    let options = ProcessOptions {
        log_level: "warn".into(),
        ..ProcessOptions::default()
    };
    let started = Instant::now();
    let envoys: Vec<EnvoyProcess> = stream::iter(nodes.iter().map(|(_, node)| {
        let bootstrap = BootstrapOptions {
            node: node.clone(),
            admin: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            xds,
            mode: xds_mode,
            tls: None,
        };
        let binary = binary.clone();
        let options = options.clone();
        async move {
            let yaml = bootstrap.to_yaml()?;
            anyhow::Ok(EnvoyProcess::start(&binary, &yaml, &options).await?)
        }
    }))
    .buffer_unordered(START_CONCURRENCY)
    .try_collect()
    .await?;
    let started_s = started.elapsed().as_secs_f64();
    eprintln!("{} Envoys started in {started_s:.1} s", envoys.len());

    // Every Envoy connected and acknowledged everything.
    let ids: Vec<&str> = nodes.iter().map(|(_, n)| n.id.as_str()).collect();
    let before = loop {
        let routes = settled(&debug, &url).await?;
        if ids.iter().all(|id| routes.contains_key(*id)) {
            break routes;
        }
        if started.elapsed() > deadline {
            let exited = envoys.iter().filter(|e| e.exit_status().is_some()).count();
            bail!(
                "only {} of {} Envoys synced within {deadline:?} ({exited} exited)",
                routes.len(),
                ids.len()
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let synced_s = started.elapsed().as_secs_f64();
    // Idle, for memory, and for what the Envoys spend when nothing changes (stats flushes, timers).
    let idle_cpu_before = envoys_cpu(&envoys);
    let idle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let envoys_idle_cpu_per_s = idle_cpu_before
        .zip(envoys_cpu(&envoys))
        .map(|(a, b)| (b - a) / idle_started.elapsed().as_secs_f64());
    let idle_rss_kb = pid.and_then(|p| process::memory_kb(p).ok()).map(|m| m.0);

    let cpu_before = pid.and_then(|p| process::cpu_seconds(p).ok());
    let envoys_cpu_before = envoys_cpu(&envoys);
    let changed_at = SystemTime::now().duration_since(UNIX_EPOCH)?;
    change.apply(dir)?;
    let t0 = Instant::now();
    let mut converged_at: BTreeMap<&str, Duration> = BTreeMap::new();
    let reached = |id: &&str| {
        nodes
            .iter()
            .any(|(j, n)| n.id == *id && affected.contains(j))
    };
    let affected_ids: Vec<&str> = ids.iter().copied().filter(reached).collect();
    let mut last_routes = before.clone();
    while affected_ids.iter().any(|id| !converged_at.contains_key(id)) && t0.elapsed() < deadline {
        let routes = settled(&debug, &url).await?;
        let at = t0.elapsed();
        for id in &affected_ids {
            let moved = routes
                .get(*id)
                .is_some_and(|v| before.get(*id).is_some_and(|b| b != v));
            if moved {
                converged_at.entry(id).or_insert(at);
            }
        }
        last_routes = routes;
        tokio::time::sleep(POLL).await;
    }
    let unaffected_moved = ids
        .iter()
        .filter(|id| !reached(id))
        .filter(|id| last_routes.get(**id) != before.get(**id))
        .count();
    let cpu_s = match (cpu_before, pid.and_then(|p| process::cpu_seconds(p).ok())) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let envoys_cpu_s = envoys_cpu_before
        .zip(envoys_cpu(&envoys))
        .map(|(a, b)| b - a);
    let changed_at_ms = changed_at.as_secs_f64() * 1e3;
    let mut applied: Vec<f64> = Vec::new();
    for envoy in &envoys {
        if let Some(at) = routes_updated_at_ms(envoy).await? {
            if at >= changed_at_ms {
                applied.push(at - changed_at_ms);
            }
        }
    }
    applied.sort_by(f64::total_cmp);
    let mut latencies: Vec<f64> = converged_at
        .values()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    drop(envoys);
    let count = ids.len().max(1) as f64;
    Ok(EnvoyRun {
        envoys: ids.len(),
        started_s,
        synced_s,
        change: change.description.clone(),
        affected: affected_ids.len(),
        unaffected_moved,
        p50_ms: crate::percentile(&latencies, 50.0),
        p99_ms: crate::percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(f64::NAN),
        converged: latencies.len(),
        applied: applied.len(),
        applied_p50_ms: crate::percentile(&applied, 50.0),
        applied_p99_ms: crate::percentile(&applied, 99.0),
        applied_max_ms: applied.last().copied().unwrap_or(f64::NAN),
        cpu_s,
        envoys_cpu_s,
        envoys_idle_cpu_per_s,
        empty_rss_kb,
        idle_rss_kb,
        rss_per_envoy_kb: match (empty_rss_kb, idle_rss_kb) {
            (Some(e), Some(i)) => Some((i as f64 - e as f64) / count),
            _ => None,
        },
    })
}

/// When the Envoy last applied a route configuration, in milliseconds since the epoch: the latest of its
/// `rds.<route>.config_reload_time_ms` gauges (one per RDS route configuration it has).
async fn routes_updated_at_ms(envoy: &EnvoyProcess) -> anyhow::Result<Option<f64>> {
    let stats = envoy
        .admin()
        .stats_matching(Some(r"\.rds\..*\.config_reload_time_ms$"))
        .await?;
    Ok(stats.values().max().map(|&ms| ms as f64))
}

/// The CPU seconds every Envoy has used so far, if each can be read.
fn envoys_cpu(envoys: &[EnvoyProcess]) -> Option<f64> {
    envoys
        .iter()
        .map(|e| process::cpu_seconds(e.pid()).ok())
        .sum()
}

/// Node id -> route version, for every proxy that has acknowledged the latest response of every type (the
/// newest stream of a node, should one have reconnected).
async fn settled(client: &reqwest::Client, url: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let proxies: Vec<ProxyView> = client.get(url).send().await?.json().await?;
    let mut newest: BTreeMap<String, ProxyView> = BTreeMap::new();
    for p in proxies {
        if newest
            .get(&p.node_id)
            .is_none_or(|seen| seen.stream < p.stream)
        {
            newest.insert(p.node_id.clone(), p);
        }
    }
    Ok(newest
        .into_iter()
        .filter_map(|(id, p)| p.settled_routes().map(|v| (id, v.to_string())))
        .collect())
}

pub fn print(run: &EnvoyRun) {
    println!(
        "\n{} real Envoys: started in {:.1} s, all synced after {:.1} s; server RSS {} KB per connected Envoy; \
         idle, the Envoys together use {} s of CPU per second",
        run.envoys,
        run.started_s,
        run.synced_s,
        run.rss_per_envoy_kb
            .map_or("-".into(), |k| format!("{k:.1}")),
        run.envoys_idle_cpu_per_s
            .map_or("-".into(), |c| format!("{c:.2}")),
    );
    println!(
        "| change | converged of affected | unaffected moved | ACKed p50 / p99 / max ms | applied | applied (Envoy's clock) p50 / p99 / max ms | server CPU s | Envoys' CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let seconds = |s: Option<f64>| s.map_or("-".into(), |c| format!("{c:.2}"));
    println!(
        "| {} | {} of {} (of {}) | {} | {:.0} / {:.0} / {:.0} | {} of {} | {:.0} / {:.0} / {:.0} | {} | {} |",
        run.change,
        run.converged,
        run.affected,
        run.envoys,
        run.unaffected_moved,
        run.p50_ms,
        run.p99_ms,
        run.max_ms,
        run.applied,
        run.envoys,
        run.applied_p50_ms,
        run.applied_p99_ms,
        run.applied_max_ms,
        seconds(run.cpu_s),
        seconds(run.envoys_cpu_s),
    );
}
