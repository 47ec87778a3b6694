//! Prometheus text exposition, written by hand: a dozen series do not need a metrics crate.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AdminState;
use crate::xds::status::{Counters, Mode};
use crate::xds::tls::Refusal;
use crate::xds::ResourceType;
use crate::xds::{Limit, ProxyStatus};

pub async fn render(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text(&state),
    )
}

fn text(state: &AdminState) -> String {
    let mut out = String::new();
    let proxies: Vec<ProxyStatus> = state.registry.latest_per_node().into_values().collect();

    family(
        &mut out,
        "switchyard_proxies",
        "gauge",
        "Connected proxies (distinct node ids), by xDS mode.",
    );
    for (mode, label) in [(Mode::Sotw, "sotw"), (Mode::Delta, "delta")] {
        let n = proxies.iter().filter(|p| p.mode == mode).count();
        let _ = writeln!(out, "switchyard_proxies{{mode=\"{label}\"}} {n}");
    }

    family(
        &mut out,
        "switchyard_proxies_rejecting",
        "gauge",
        "Proxies whose latest response of a type was rejected (NACK).",
    );
    for t in ResourceType::ALL {
        let n = proxies
            .iter()
            .filter(|p| p.types.get(&t).is_some_and(|s| s.rejected))
            .count();
        let _ = writeln!(out, "switchyard_proxies_rejecting{{type=\"{t}\"}} {n}");
    }

    family(
        &mut out,
        "switchyard_proxies_unidentified",
        "gauge",
        "Connected proxies not being served: their identity matches no workload or gateway, or no valid \
         configuration has been accepted yet.",
    );
    let n = proxies
        .iter()
        .filter(|p| p.identity_error.is_some())
        .count();
    let _ = writeln!(out, "switchyard_proxies_unidentified {n}");

    family(
        &mut out,
        "switchyard_proxy_translations",
        "gauge",
        "Per-proxy translations held by the generation being served: one per connected proxy identity.",
    );
    let _ = writeln!(
        out,
        "switchyard_proxy_translations {}",
        state.cache.current().translations_held()
    );

    if let Some(ads) = &state.ads {
        family(
            &mut out,
            "switchyard_xds_connections",
            "gauge",
            "Open xDS connections (limit: --xds-max-connections).",
        );
        let _ = writeln!(
            out,
            "switchyard_xds_connections {}",
            ads.connections().count()
        );
        family(
            &mut out,
            "switchyard_xds_pending_bytes",
            "gauge",
            "Response bytes queued for proxies across all streams (limit: --xds-max-pending-bytes).",
        );
        let _ = writeln!(out, "switchyard_xds_pending_bytes {}", ads.pending_bytes());
    }

    let counters = state.registry.counters();
    for (name, help, counter) in [
        (
            "switchyard_xds_pushes_total",
            "xDS responses sent.",
            &counters.pushes,
        ),
        (
            "switchyard_xds_acks_total",
            "xDS responses acknowledged.",
            &counters.acks,
        ),
        (
            "switchyard_xds_nacks_total",
            "xDS responses rejected.",
            &counters.nacks,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for t in ResourceType::ALL {
            let _ = writeln!(out, "{name}{{type=\"{t}\"}} {}", Counters::get(counter, t));
        }
    }

    family(
        &mut out,
        "switchyard_xds_tls_refused_total",
        "counter",
        "xDS connections refused at the TLS handshake, and streams refused because the node they claim is not \
         their certificate's identity (PERMISSION_DENIED), by reason.",
    );
    for reason in Refusal::ALL {
        let _ = writeln!(
            out,
            "switchyard_xds_tls_refused_total{{reason=\"{}\"}} {}",
            reason.label(),
            state.tls.get(reason)
        );
    }
    family(
        &mut out,
        "switchyard_xds_refused_total",
        "counter",
        "xDS connections and streams refused or ended by a limit of the port, by reason (see `switchyard serve \
         --help`).",
    );
    for limit in Limit::ALL {
        let _ = writeln!(
            out,
            "switchyard_xds_refused_total{{reason=\"{}\"}} {}",
            limit.label(),
            counters.limits.get(limit)
        );
    }
    family(
        &mut out,
        "switchyard_tls_reloads_total",
        "counter",
        "Re-readings of Switchyard's changed certificate, key and client CA files, by outcome (a rejected set \
         leaves the previous one in use).",
    );
    let (accepted, rejected) = state.tls.reloads();
    let _ = writeln!(
        out,
        "switchyard_tls_reloads_total{{outcome=\"accepted\"}} {accepted}"
    );
    let _ = writeln!(
        out,
        "switchyard_tls_reloads_total{{outcome=\"rejected\"}} {rejected}"
    );

    let status = state.status.borrow().clone();
    family(
        &mut out,
        "switchyard_config_reloads_total",
        "counter",
        "Readings of the spec directory, by outcome.",
    );
    let _ = writeln!(
        out,
        "switchyard_config_reloads_total{{outcome=\"accepted\"}} {}",
        status.accepted_total
    );
    let _ = writeln!(
        out,
        "switchyard_config_reloads_total{{outcome=\"rejected\"}} {}",
        status.rejected_total
    );
    family(
        &mut out,
        "switchyard_config_errors",
        "gauge",
        "Errors in the latest reading of the specs (0 when it is being served).",
    );
    let _ = writeln!(out, "switchyard_config_errors {}", status.errors.len());
    family(
        &mut out,
        "switchyard_config_warnings",
        "gauge",
        "Warnings in the latest reading of the specs.",
    );
    let _ = writeln!(out, "switchyard_config_warnings {}", status.warnings.len());
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
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

    #[test]
    fn a_reconnecting_proxy_counts_once() {
        let registry = ProxyRegistry::default();
        let state = AdminState {
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
        };
        // The old stream of `a` lingers while its reconnect is already registered.
        let _old = registry.register(&node("a"), Mode::Sotw);
        let _new = registry.register(&node("a"), Mode::Sotw);
        let _b = registry.register(&node("b"), Mode::Delta);
        let out = text(&state);
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
        let out = text(&state);
        assert!(
            out.contains("switchyard_xds_tls_refused_total{reason=\"identity_mismatch\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("switchyard_xds_tls_refused_total{reason=\"expired\"} 0\n"),
            "{out}"
        );
    }
}
