//! The figures of a window: differences between its oldest and newest reading of every Envoy's counters.
//! Pure: readings and proxies in, figures out, so `switchyard top` and the dashboard show the same numbers.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use tokio::time::Instant;

use super::proxy::ProxyView;
use crate::envoy::Stats;
use crate::node_id::short_name;

/// One reading of every Envoy.
#[derive(Debug, Clone)]
pub struct Reading {
    pub at: Instant,
    /// Per Envoy admin address, its counters (absent if it did not answer).
    pub stats: BTreeMap<SocketAddr, Option<Stats>>,
}

/// What `switchyard top -o json` prints and `/debug/traffic` answers.
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

/// The figures between two readings; `service` keeps one service (short name or host).
pub fn snapshot(
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
                aborts_injected: fault_total(addr, FAULT_ABORTS),
                delays_injected: fault_total(addr, FAULT_DELAYS),
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

/// The fault filter's counters, per HTTP connection manager (`http.<prefix>.fault.aborts_injected`).
const FAULT_ABORTS: &str = ".fault.aborts_injected";
const FAULT_DELAYS: &str = ".fault.delays_injected";

/// Whether [`snapshot`] looks at a counter of this name: what a reading needs to keep of an Envoy's stats.
pub fn counts(name: &str) -> bool {
    let request_counter = name
        .strip_prefix("cluster.")
        .and_then(|n| {
            n.strip_suffix(".upstream_rq_total")
                .or_else(|| n.strip_suffix(".upstream_rq_5xx"))
        })
        .is_some_and(|cluster| outbound_cluster(cluster).is_some());
    request_counter || name.ends_with(FAULT_ABORTS) || name.ends_with(FAULT_DELAYS)
}

/// The same choice as [`counts`], as the `filter` regular expression of Envoy's `/stats`, so an Envoy sends
/// only these (a sidecar has thousands of stats; the figures need a few per outbound cluster).
pub const STATS_FILTER: &str = r"^cluster\.outbound\|[^|]*\|[^|]*\|[^|]*\.upstream_rq_(total|5xx)$|\.fault\.(aborts|delays)_injected$";

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    /// The JSON `switchyard top -o json` prints and `/debug/traffic` answers, which the dashboard's script
    /// reads field by field.
    #[test]
    fn the_json_shape() {
        let addr: SocketAddr = "127.0.1.1:15000".parse().unwrap();
        let v1 = "cluster.outbound|9080|v1|reviews.default.svc.cluster.local";
        let t0 = Instant::now();
        let first = reading(t0, addr, &[(&format!("{v1}.upstream_rq_total"), 1)]);
        let mut last = reading(
            t0 + Duration::from_secs(2),
            addr,
            &[
                (&format!("{v1}.upstream_rq_total"), 5),
                (&format!("{v1}.upstream_rq_5xx"), 1),
            ],
        );
        last.stats.insert("127.0.9.1:15000".parse().unwrap(), None);
        let proxy: ProxyView = serde_json::from_value(serde_json::json!({
            "stream": 3,
            "node_id": "sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local",
            "metadata": {"INSTANCE_IPS": "127.0.1.1"},
            "types": {"Cluster": {"sent_version": "a", "sent_nonce": "1", "acked_version": "a",
                                  "last_nack": null, "rejected": false}},
        }))
        .unwrap();
        let json = serde_json::to_value(snapshot(&first, &last, &[proxy], None)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "window_seconds": 2.0,
                "services": [{
                    "service": "reviews.default.svc.cluster.local",
                    "subset": "v1",
                    "requests": 4,
                    "rps": 2.0,
                    "share": 1.0,
                    "success_rate": 0.75,
                }],
                "proxies": [
                    {
                        "proxy": "127.0.9.1:15000",
                        "envoy_admin": "127.0.9.1:15000",
                        "sync": "DISCONNECTED",
                        "reachable": false,
                        "aborts_injected": 0,
                        "delays_injected": 0,
                    },
                    {
                        "proxy": "productpage-v1.default",
                        "envoy_admin": "127.0.1.1:15000",
                        "sync": "SYNCED",
                        "reachable": true,
                        "aborts_injected": 0,
                        "delays_injected": 0,
                    },
                ],
            })
        );
    }

    /// A reading keeps only what the figures use (Envoy is asked for the same with [`STATS_FILTER`]; the
    /// `top` and dashboard end-to-end tests read real Envoys through it).
    #[test]
    fn a_reading_keeps_what_the_figures_count() {
        for (name, wanted) in [
            (
                "cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_total",
                true,
            ),
            (
                "cluster.outbound|9080||details.default.svc.cluster.local.upstream_rq_5xx",
                true,
            ),
            (
                "cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_200",
                false,
            ),
            (
                "cluster.inbound|9080||reviews.default.svc.cluster.local.upstream_rq_total",
                false,
            ),
            ("cluster.xds_cluster.upstream_rq_total", false),
            ("http.outbound_0.0.0.0_9080.fault.aborts_injected", true),
            ("http.outbound_0.0.0.0_9080.fault.delays_injected", true),
            ("http.outbound_0.0.0.0_9080.fault.active_faults", false),
        ] {
            assert_eq!(counts(name), wanted, "{name}");
        }
    }
}
