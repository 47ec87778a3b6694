//! DestinationRule → `DestinationRule` with parsed traffic policies.

use crate::mesh::Code;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::validate;
use super::{meta_of, Diags};
use crate::mesh::names::resolve_host;
use crate::mesh::{
    labels_match, ConnectionPool, ConsistentHash, DestinationRule, HashAlgorithm, HashKey, Labels,
    LoadBalancer, Meta, OutlierDetection, PolicySettings, Service, Subset, TrafficPolicy,
};
use crate::spec::{self, Kind, SimpleLb, Sourced};

pub(super) fn resolve(
    items: &[Arc<Sourced<spec::DestinationRule>>],
    services: &BTreeMap<String, Arc<Service>>,
    diags: &mut Diags<'_>,
) -> BTreeMap<String, DestinationRule> {
    let mut out: BTreeMap<String, DestinationRule> = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::DestinationRule);
        let spec::DestinationRule {
            host,
            traffic_policy,
            subsets,
            export_to: _,
            workload_selector: _,
        } = &item.value;
        let fqdn = resolve_host(host, item.namespace());
        if fqdn.contains('*') {
            diags.error(
                &meta,
                Code::NotSupportedYet,
                "spec.host",
                "wildcard DestinationRule hosts are not supported yet",
            );
        }
        let service = services.get(&fqdn);
        if service.is_none() {
            warn_unused(&meta, &fqdn, diags);
        }
        let policy = traffic_policy
            .as_ref()
            .map(|p| traffic_policy_of(&meta, "spec.trafficPolicy", p, diags))
            .unwrap_or_default();
        let mut resolved_subsets: Vec<Subset> = Vec::new();
        for (i, subset) in subsets.iter().enumerate() {
            let field = format!("spec.subsets[{i}]");
            if resolved_subsets.iter().any(|s| s.name == subset.name) {
                diags.error(
                    &meta,
                    Code::DuplicateSubset,
                    format!("{field}.name"),
                    format!("subset `{}` is defined twice", subset.name),
                );
                continue;
            }
            if subset.name.is_empty() || subset.name.contains('|') {
                diags.error(
                    &meta,
                    Code::InvalidName,
                    format!("{field}.name"),
                    "a subset name must be non-empty and must not contain `|`",
                );
                continue;
            }
            if let Some(service) = service {
                warn_if_empty(&meta, &field, &subset.name, &subset.labels, service, diags);
            }
            let subset_policy = subset
                .traffic_policy
                .as_ref()
                .map(|p| traffic_policy_of(&meta, &format!("{field}.trafficPolicy"), p, diags));
            resolved_subsets.push(Subset {
                name: subset.name.clone(),
                labels: subset.labels.clone(),
                traffic_policy: subset_policy,
            });
        }
        if let Some(existing) = out.get(&fqdn) {
            diags.error(
                &meta,
                Code::DuplicateDestinationRule,
                "spec.host",
                format!("host `{fqdn}` already has {} at {}; merging DestinationRules is not supported yet", existing.meta.resource, existing.meta.origin),
            );
            continue;
        }
        out.insert(
            fqdn.clone(),
            DestinationRule {
                meta,
                host: fqdn,
                traffic_policy: policy,
                subsets: resolved_subsets,
            },
        );
    }
    out
}

/// The codes of the warnings that read the services: the only diagnostics of an unchanged rule that a change
/// elsewhere can change.
pub(super) const SERVICE_WARNINGS: [Code; 2] = [Code::UnusedDestinationRule, Code::EmptySubset];

/// The [`SERVICE_WARNINGS`] of a resolved rule, for the service of its host. A rule of a valid reading kept
/// every subset of its resource, in order, so each subset's field is its position.
pub(super) fn warn_of_services(
    rule: &DestinationRule,
    service: Option<&Service>,
    diags: &mut Diags<'_>,
) {
    let Some(service) = service else {
        return warn_unused(&rule.meta, &rule.host, diags);
    };
    for (i, subset) in rule.subsets.iter().enumerate() {
        let field = format!("spec.subsets[{i}]");
        warn_if_empty(
            &rule.meta,
            &field,
            &subset.name,
            &subset.labels,
            service,
            diags,
        );
    }
}

fn warn_unused(meta: &Meta, fqdn: &str, diags: &mut Diags<'_>) {
    diags.warn(
        meta,
        Code::UnusedDestinationRule,
        "spec.host",
        format!("host `{fqdn}` is not defined by any ServiceEntry; this rule has no effect"),
    );
}

fn warn_if_empty(
    meta: &Meta,
    field: &str,
    subset: &str,
    labels: &Labels,
    service: &Service,
    diags: &mut Diags<'_>,
) {
    if !service
        .endpoints
        .iter()
        .any(|e| labels_match(labels, &e.labels))
    {
        diags.warn(
            meta,
            Code::EmptySubset,
            format!("{field}.labels"),
            format!(
                "subset `{subset}` selects no workload of `{}`; traffic sent to it will fail",
                service.hostname
            ),
        );
    }
}

fn traffic_policy_of(
    meta: &Meta,
    field: &str,
    p: &spec::TrafficPolicy,
    diags: &mut Diags<'_>,
) -> TrafficPolicy {
    let spec::TrafficPolicy {
        load_balancer,
        connection_pool,
        outlier_detection,
        tls: _, // only `mode: DISABLE` loads, which is what happens without it
        port_level_settings,
        tunnel: _,
        proxy_protocol: _,
        retry_budget: _,
    } = p;
    let settings = policy_settings(
        meta,
        field,
        load_balancer.as_ref(),
        connection_pool.as_ref(),
        outlier_detection.as_ref(),
        diags,
    );
    let mut port_level: Vec<(u32, PolicySettings)> = Vec::new();
    for (i, pl) in port_level_settings.iter().enumerate() {
        let field = format!("{field}.portLevelSettings[{i}]");
        if port_level.iter().any(|(n, _)| *n == pl.port.number) {
            diags.error(
                meta,
                Code::DuplicatePort,
                format!("{field}.port.number"),
                format!("port {} has two portLevelSettings", pl.port.number),
            );
            continue;
        }
        let s = policy_settings(
            meta,
            &field,
            pl.load_balancer.as_ref(),
            pl.connection_pool.as_ref(),
            pl.outlier_detection.as_ref(),
            diags,
        );
        port_level.push((pl.port.number, s));
    }
    TrafficPolicy {
        settings,
        port_level,
    }
}

fn policy_settings(
    meta: &Meta,
    field: &str,
    lb: Option<&spec::LoadBalancerSettings>,
    pool: Option<&spec::ConnectionPoolSettings>,
    outlier: Option<&spec::OutlierDetection>,
    diags: &mut Diags<'_>,
) -> PolicySettings {
    PolicySettings {
        load_balancer: lb
            .and_then(|lb| load_balancer(meta, &format!("{field}.loadBalancer"), lb, diags)),
        connection_pool: pool
            .map(|p| connection_pool(meta, &format!("{field}.connectionPool"), p, diags)),
        outlier_detection: outlier
            .map(|o| outlier_detection(meta, &format!("{field}.outlierDetection"), o, diags)),
    }
}

fn load_balancer(
    meta: &Meta,
    field: &str,
    lb: &spec::LoadBalancerSettings,
    diags: &mut Diags<'_>,
) -> Option<LoadBalancer> {
    match (&lb.simple, &lb.consistent_hash) {
        (Some(_), Some(_)) => {
            diags.error(
                meta,
                Code::ConflictingFields,
                field,
                "set either `simple` or `consistentHash`, not both",
            );
            None
        }
        (Some(simple), None) => {
            match simple {
                SimpleLb::Unspecified => None,
                // Istio maps the deprecated LEAST_CONN to LEAST_REQUEST.
                SimpleLb::LeastConn | SimpleLb::LeastRequest => Some(LoadBalancer::LeastRequest),
                SimpleLb::RoundRobin => Some(LoadBalancer::RoundRobin),
                SimpleLb::Random => Some(LoadBalancer::Random),
                SimpleLb::Passthrough => {
                    diags.error(meta, Code::NotSupportedYet, format!("{field}.simple"), "PASSTHROUGH needs original-destination routing, which is not supported yet");
                    None
                }
            }
        }
        (None, Some(ch)) => consistent_hash(meta, &format!("{field}.consistentHash"), ch, diags)
            .map(LoadBalancer::ConsistentHash),
        (None, None) => None,
    }
}

fn consistent_hash(
    meta: &Meta,
    field: &str,
    ch: &spec::ConsistentHashLb,
    diags: &mut Diags<'_>,
) -> Option<ConsistentHash> {
    let mut keys = Vec::new();
    if let Some(h) = &ch.http_header_name {
        if validate::header_name(diags, meta, &format!("{field}.httpHeaderName"), h) {
            keys.push(HashKey::Header(h.clone()));
        }
    }
    if let Some(c) = &ch.http_cookie {
        let ttl = validate::opt_duration(
            diags,
            meta,
            &format!("{field}.httpCookie.ttl"),
            c.ttl.as_ref(),
        );
        keys.push(HashKey::Cookie {
            name: c.name.clone(),
            path: c.path.clone(),
            ttl,
        });
    }
    if ch.use_source_ip == Some(true) {
        keys.push(HashKey::SourceIp);
    }
    if let Some(q) = &ch.http_query_parameter_name {
        keys.push(HashKey::QueryParameter(q.clone()));
    }
    let algorithm = match (&ch.ring_hash, &ch.maglev) {
        (Some(_), Some(_)) => {
            diags.error(
                meta,
                Code::ConflictingFields,
                field,
                "set either `ringHash` or `maglev`, not both",
            );
            return None;
        }
        (_, Some(m)) => {
            if let Some(size) = m.table_size {
                if size > MAX_MAGLEV_TABLE || !is_prime(size) {
                    diags.error(meta, Code::OutOfRange, format!("{field}.maglev.tableSize"), format!("maglev tableSize {size} must be a prime number no larger than {MAX_MAGLEV_TABLE} (Envoy rejects it otherwise)"));
                    return None;
                }
            }
            HashAlgorithm::Maglev {
                table_size: m.table_size,
            }
        }
        (Some(r), None) => {
            if let Some(size) = r.minimum_ring_size.filter(|s| *s > MAX_RING_SIZE) {
                diags.error(meta, Code::OutOfRange, format!("{field}.ringHash.minimumRingSize"), format!("minimumRingSize {size} is larger than Envoy's maximum ring size {MAX_RING_SIZE}"));
                return None;
            }
            HashAlgorithm::RingHash {
                minimum_ring_size: r.minimum_ring_size,
            }
        }
        (None, None) => HashAlgorithm::RingHash {
            minimum_ring_size: None,
        },
    };
    if keys.len() != 1 {
        diags.error(meta, Code::ConflictingFields, field, "consistentHash takes exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName");
        return None;
    }
    keys.pop().map(|key| ConsistentHash { key, algorithm })
}

/// Envoy's bounds: `RingHashLbConfig.minimum_ring_size` (and the default maximum) is 8M entries;
/// `MaglevLbConfig.table_size` is at most 5000011 and must be prime.
const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
const MAX_MAGLEV_TABLE: u64 = 5_000_011;

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    // Trial division is enough: callers bound `n` to a few million first.
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

fn connection_pool(
    meta: &Meta,
    field: &str,
    p: &spec::ConnectionPoolSettings,
    diags: &mut Diags<'_>,
) -> ConnectionPool {
    let mut out = ConnectionPool::default();
    if let Some(tcp) = &p.tcp {
        out.max_connections = tcp.max_connections;
        out.connect_timeout = validate::opt_positive_duration(
            diags,
            meta,
            &format!("{field}.tcp.connectTimeout"),
            tcp.connect_timeout.as_ref(),
        );
        out.max_connection_duration = validate::opt_duration(
            diags,
            meta,
            &format!("{field}.tcp.maxConnectionDuration"),
            tcp.max_connection_duration.as_ref(),
        );
    }
    if let Some(http) = &p.http {
        out.http1_max_pending_requests = http.http1_max_pending_requests;
        out.http2_max_requests = http.http2_max_requests;
        out.max_requests_per_connection = http.max_requests_per_connection;
        out.max_retries = http.max_retries;
        out.idle_timeout = validate::opt_duration(
            diags,
            meta,
            &format!("{field}.http.idleTimeout"),
            http.idle_timeout.as_ref(),
        );
    }
    out
}

fn outlier_detection(
    meta: &Meta,
    field: &str,
    o: &spec::OutlierDetection,
    diags: &mut Diags<'_>,
) -> OutlierDetection {
    for (name, value) in [
        ("maxEjectionPercent", o.max_ejection_percent),
        ("minHealthPercent", o.min_health_percent),
    ] {
        if let Some(v) = value.filter(|v| *v > 100) {
            diags.error(
                meta,
                Code::PercentageOutOfRange,
                format!("{field}.{name}"),
                format!("percentage {v} is outside 0..100"),
            );
        }
    }
    OutlierDetection {
        consecutive_5xx_errors: o.consecutive_5xx_errors,
        consecutive_gateway_errors: o.consecutive_gateway_errors,
        interval: validate::opt_positive_duration(
            diags,
            meta,
            &format!("{field}.interval"),
            o.interval.as_ref(),
        ),
        base_ejection_time: validate::opt_positive_duration(
            diags,
            meta,
            &format!("{field}.baseEjectionTime"),
            o.base_ejection_time.as_ref(),
        ),
        max_ejection_percent: o.max_ejection_percent,
        min_health_percent: o.min_health_percent,
    }
}
