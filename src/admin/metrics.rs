//! `/metrics`: one `prometheus-client` registry, encoded as OpenMetrics text.
//!
//! Everything is registered here, in [`registry`], in one place:
//! - what is state (connected proxies, open connections, queued bytes, the latest reading's errors) and the
//!   totals the xDS server and the pipeline already keep as plain atomics (pushes, ACKs, NACKs, refusals,
//!   readings) are read at scrape time by a collector ([`Derived`]), so nothing is kept twice;
//! - the histograms are recorded where their events happen: the xDS server's
//!   ([`crate::xds::XdsHistograms`]: push time, response size, convergence) by the stream tasks, the pipeline's
//!   ([`ConfigMetrics`]: translation time) by the pipeline, which is why the type is defined here, like
//!   [`super::ConfigStatus`], rather than above the admin endpoint.
//!
//! Names follow istiod's own (`pilot_proxy_convergence_time` is `switchyard_proxy_convergence_time`); times are
//! in seconds, sizes in bytes.

use std::fmt;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AdminState;
use crate::xds::status::{Counters, Mode};
use crate::xds::tls::Refusal;
use crate::xds::ResourceType;
use crate::xds::{Limit, ProxyStatus};

/// What Prometheus asks for first, and what the body is.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds to build a generation from an accepted reading: a few milliseconds for Bookinfo, tens for a
/// thousand-proxy mesh (BENCHMARKS.md).
const TRANSLATION_TIME_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// What the pipeline records. Cloning shares it.
#[derive(Debug, Clone)]
pub struct ConfigMetrics {
    translation_time: Histogram,
}

impl Default for ConfigMetrics {
    fn default() -> ConfigMetrics {
        ConfigMetrics {
            translation_time: Histogram::new(TRANSLATION_TIME_BUCKETS),
        }
    }
}

impl ConfigMetrics {
    /// An accepted reading became a generation in `elapsed`.
    pub fn translated(&self, elapsed: Duration) {
        self.translation_time.observe(elapsed.as_secs_f64());
    }
}

impl Collector for ConfigMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        self.translation_time.encode(encoder.encode_descriptor(
            "translation_time",
            "Seconds to translate an accepted reading of the specs into the generation served (what changed \
             since the previous one).",
            None,
            MetricType::Histogram,
        )?)
    }
}

/// Every series `/metrics` shows, registered once, when the admin router is built.
pub fn registry(state: &AdminState) -> Registry {
    let mut registry = Registry::with_prefix("switchyard");
    registry.register_collector(Box::new(Derived(state.clone())));
    registry.register_collector(Box::new(state.config_metrics.clone()));
    registry.register_collector(Box::new(state.registry.counters().histograms.clone()));
    registry
}

pub fn render(registry: &Registry) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Err(fmt::Error) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

/// The series read from the admin endpoint's sources at scrape time.
struct Derived(AdminState);

impl fmt::Debug for Derived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Derived").finish_non_exhaustive()
    }
}

impl Collector for Derived {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let state = &self.0;
        let out = &mut encoder;
        let proxies: Vec<ProxyStatus> = state.registry.latest_per_node().into_values().collect();

        gauges(
            out,
            "proxies",
            "Connected proxies (distinct node ids), by xDS mode.",
            [(Mode::Sotw, "sotw"), (Mode::Delta, "delta")].map(|(mode, label)| {
                let n = proxies.iter().filter(|p| p.mode == mode).count();
                (("mode", label), n)
            }),
        )?;
        gauges(
            out,
            "proxies_rejecting",
            "Proxies whose latest response of a type was rejected (NACK).",
            ResourceType::ALL.map(|t| {
                let n = proxies
                    .iter()
                    .filter(|p| p.types.get(&t).is_some_and(|s| s.rejected))
                    .count();
                (("type", t.short_name()), n)
            }),
        )?;
        gauge(
            out,
            "proxies_unidentified",
            "Connected proxies not being served: their identity matches no workload or gateway, or no valid \
             configuration has been accepted yet.",
            proxies
                .iter()
                .filter(|p| p.identity_error.is_some())
                .count(),
        )?;
        gauge(
            out,
            "proxy_translations",
            "Per-proxy translations held by the generation being served: one per connected proxy identity.",
            state.cache.current().translations_held(),
        )?;
        if let Some(ads) = &state.ads {
            gauge(
                out,
                "xds_connections",
                "Open xDS connections (limit: --xds-max-connections).",
                ads.connections().count(),
            )?;
            gauge(
                out,
                "xds_pending_bytes",
                "Response bytes queued for proxies across all streams (limit: --xds-max-pending-bytes).",
                ads.pending_bytes(),
            )?;
        }

        let counters = state.registry.counters();
        for (name, help, counter) in [
            ("xds_pushes", "xDS responses sent.", &counters.pushes),
            ("xds_acks", "xDS responses acknowledged.", &counters.acks),
            (
                "xds_nacks",
                "xDS responses rejected (NACK), by type.",
                &counters.nacks,
            ),
        ] {
            totals(
                out,
                name,
                help,
                ResourceType::ALL.map(|t| (("type", t.short_name()), Counters::get(counter, t))),
            )?;
        }
        totals(
            out,
            "xds_tls_refused",
            "xDS connections refused at the TLS handshake, and streams refused because the node they claim is \
             not their certificate's identity (PERMISSION_DENIED), by reason.",
            Refusal::ALL.map(|reason| (("reason", reason.label()), state.tls.get(reason))),
        )?;
        totals(
            out,
            "xds_refused",
            "xDS connections and streams refused or ended by a limit of the port, by reason (see `switchyard \
             serve --help`).",
            Limit::ALL.map(|limit| (("reason", limit.label()), counters.limits.get(limit))),
        )?;
        let (accepted, rejected) = state.tls.reloads();
        totals(
            out,
            "tls_reloads",
            "Re-readings of Switchyard's changed certificate, key and client CA files, by outcome (a rejected \
             set leaves the previous one in use).",
            [
                (("outcome", "accepted"), accepted),
                (("outcome", "rejected"), rejected),
            ],
        )?;

        let status = state.status.borrow().clone();
        totals(
            out,
            "config_reloads",
            "Readings of the spec directory, by outcome: a rejected revision leaves proxies on the last \
             accepted one.",
            [
                (("outcome", "accepted"), status.accepted_total),
                (("outcome", "rejected"), status.rejected_total),
            ],
        )?;
        gauge(
            out,
            "config_errors",
            "Errors in the latest reading of the specs (0 when it is being served).",
            status.errors.len(),
        )?;
        gauge(
            out,
            "config_warnings",
            "Warnings in the latest reading of the specs.",
            status.warnings.len(),
        )
    }
}

type Label = (&'static str, &'static str);

fn gauge(out: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: usize) -> fmt::Result {
    let metric = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(as_i64(value)).encode(metric)
}

fn gauges(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Label, usize)>,
) -> fmt::Result {
    let samples = samples
        .into_iter()
        .map(|(label, n)| (label, ConstGauge::new(as_i64(n))));
    family(out, name, help, MetricType::Gauge, samples)
}

/// A counter family; its samples are named `<name>_total`.
fn totals(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Label, u64)>,
) -> fmt::Result {
    let samples = samples
        .into_iter()
        .map(|(label, n)| (label, ConstCounter::new(n)));
    family(out, name, help, MetricType::Counter, samples)
}

/// A family of one label.
fn family<M: EncodeMetric>(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Iterator<Item = (Label, M)>,
) -> fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, kind)?;
    for (label, metric) in samples {
        metric.encode(family.encode_family(&[label])?)?;
    }
    Ok(())
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::*;
    use crate::admin::ConfigStatus;
    use crate::xds::{Cache, NoConfig, ProxyRegistry};

    fn node(id: &str) -> envoy_types::pb::envoy::config::core::v3::Node {
        envoy_types::pb::envoy::config::core::v3::Node {
            id: id.to_string(),
            ..Default::default()
        }
    }

    fn state(registry: ProxyRegistry) -> AdminState {
        AdminState {
            registry: registry.clone(),
            status: watch::channel(ConfigStatus::default()).1,
            cache: Cache::new(Arc::new(NoConfig)),
            tls: Default::default(),
            access: crate::admin::AdminAccess::for_address(
                "127.0.0.1:15014".parse().unwrap(),
                None,
            )
            .unwrap(),
            ads: None,
            traffic: crate::traffic::LiveTraffic::new(registry.clone(), Default::default()),
            config_metrics: ConfigMetrics::default(),
        }
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn a_reconnecting_proxy_counts_once() {
        let registry = ProxyRegistry::default();
        let state = state(registry.clone());
        let metrics = super::registry(&state);
        // The old stream of `a` lingers while its reconnect is already registered.
        let _old = registry.register(std::sync::Arc::new(node("a")), Mode::Sotw);
        let _new = registry.register(std::sync::Arc::new(node("a")), Mode::Sotw);
        let _b = registry.register(std::sync::Arc::new(node("b")), Mode::Delta);
        let out = text(&metrics);
        assert!(
            out.contains("switchyard_proxies{mode=\"sotw\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("switchyard_proxies{mode=\"delta\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("switchyard_proxies_unidentified 0\n"), "{out}");
        state.tls.refused(Refusal::IdentityMismatch);
        let out = text(&metrics);
        assert!(
            out.contains("switchyard_xds_tls_refused_total{reason=\"identity_mismatch\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("switchyard_xds_tls_refused_total{reason=\"expired\"} 0\n"),
            "{out}"
        );
    }

    #[test]
    fn histograms_show_every_type_before_any_observation() {
        let state = state(ProxyRegistry::default());
        let out = text(&super::registry(&state));
        for t in ResourceType::ALL {
            for series in ["xds_push_time", "xds_config_size_bytes"] {
                let count = format!("switchyard_{series}_count{{type=\"{t}\"}} 0\n");
                assert!(out.contains(&count), "no {count} in\n{out}");
            }
        }
        let position = |series: &str| out.find(series).unwrap_or(usize::MAX);
        assert!(
            position("switchyard_xds_push_time_count{type=\"CDS\"}")
                < position("switchyard_xds_push_time_count{type=\"RDS\"}"),
            "types in push order: {out}"
        );
        assert!(out.contains("switchyard_proxy_convergence_time_count 0\n"));
        assert!(out.contains("switchyard_translation_time_count 0\n"));
        assert!(out.ends_with("# EOF\n"), "{out}");
    }
}
