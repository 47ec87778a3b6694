//! A small request simulator over translated resources, after Istio's `pilot/pkg/simulation`: which listener,
//! virtual host and route a call hits, and what the route does. Tests assert behaviour ("jason goes to reviews
//! v2") rather than proto shapes.

use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, route, route_action::ClusterSpecifier,
    route_match::PathSpecifier, Route, RouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use prost::Message;
use switchyard::translate::Resources;

/// An HTTP request arriving at `ip:port` with a Host header and some headers.
pub struct Call<'a> {
    pub ip: &'a str,
    pub port: u32,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Cluster(String),
    Weighted(Vec<(String, u32)>),
    Redirect,
    DirectResponse(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub listener: String,
    pub virtual_host: String,
    pub route: String,
    pub destination: Destination,
    pub fault: Option<HttpFault>,
    pub timeout_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// What a call found nothing for.
pub enum Miss {
    Listener,
    VirtualHost,
    /// Envoy answers 404 (NR).
    Route,
}

pub fn simulate(r: &Resources, call: &Call<'_>) -> Result<Hit, Miss> {
    let listener = r
        .listeners
        .iter()
        .find(|l| {
            let Some(address::Address::SocketAddress(sa)) =
                l.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                return false;
            };
            sa.address == call.ip
                && sa.port_specifier == Some(socket_address::PortSpecifier::PortValue(call.port))
        })
        .ok_or(Miss::Listener)?;
    let hcm = listener
        .filter_chains
        .iter()
        .flat_map(|c| &c.filters)
        .find_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any)) => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .ok_or(Miss::Listener)?;
    let config: RouteConfiguration = match hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => r
            .routes
            .iter()
            .find(|rc| rc.name == rds.route_config_name)
            .cloned()
            .ok_or(Miss::VirtualHost)?,
        Some(RouteSpecifier::RouteConfig(rc)) => rc,
        _ => return Err(Miss::VirtualHost),
    };
    let host = call.host.rsplit_once(':').map_or(call.host, |(h, _)| h);
    let vhost = pick_virtual_host(&config.virtual_hosts, host).ok_or(Miss::VirtualHost)?;
    let route = vhost
        .routes
        .iter()
        .find(|rt| route_matches(rt, call))
        .ok_or(Miss::Route)?;
    let (destination, timeout_seconds) = match &route.action {
        Some(route::Action::Route(a)) => (
            match &a.cluster_specifier {
                Some(ClusterSpecifier::Cluster(c)) => Destination::Cluster(c.clone()),
                Some(ClusterSpecifier::WeightedClusters(w)) => Destination::Weighted(
                    w.clusters
                        .iter()
                        .map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value)))
                        .collect(),
                ),
                other => panic!("simulator does not handle {other:?}"),
            },
            a.timeout.as_ref().map(|t| t.seconds),
        ),
        Some(route::Action::Redirect(_)) => (Destination::Redirect, None),
        Some(route::Action::DirectResponse(d)) => (Destination::DirectResponse(d.status), None),
        other => panic!("simulator does not handle {other:?}"),
    };
    let fault = route
        .typed_per_filter_config
        .get("envoy.filters.http.fault")
        .map(|any| HttpFault::decode(any.value.as_slice()).expect("fault config"));
    Ok(Hit {
        listener: listener.name.clone(),
        virtual_host: vhost.name.clone(),
        route: route.name.clone(),
        destination,
        fault,
        timeout_seconds,
    })
}

/// Envoy's order: exact domain, then suffix wildcards (`*.foo`), then prefix wildcards (`foo.*`), then `*`.
fn pick_virtual_host<'a>(vhosts: &'a [VirtualHost], host: &str) -> Option<&'a VirtualHost> {
    let find =
        |pred: &dyn Fn(&str) -> bool| vhosts.iter().find(|v| v.domains.iter().any(|d| pred(d)));
    find(&|d| d.eq_ignore_ascii_case(host))
        .or_else(|| find(&|d| d.len() > 1 && d.starts_with('*') && host.ends_with(&d[1..])))
        .or_else(|| {
            find(&|d| d.len() > 1 && d.ends_with('*') && host.starts_with(&d[..d.len() - 1]))
        })
        .or_else(|| find(&|d| d == "*"))
}

fn route_matches(r: &Route, call: &Call<'_>) -> bool {
    let Some(m) = &r.r#match else { return false };
    let path_ok = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => call.path.starts_with(p.as_str()),
        Some(PathSpecifier::Path(p)) => call.path == p,
        other => panic!("simulator does not handle {other:?}"),
    };
    path_ok
        && m.headers.iter().all(|h| {
            let value = call
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&h.name))
                .map(|(_, v)| *v);
            let matched = match (&h.header_match_specifier, value) {
                (Some(HeaderMatchSpecifier::PresentMatch(p)), v) => v.is_some() == *p,
                (Some(HeaderMatchSpecifier::StringMatch(s)), Some(v)) => string_matches(s, v),
                (Some(HeaderMatchSpecifier::StringMatch(s)), None) => {
                    h.treat_missing_header_as_empty && string_matches(s, "")
                }
                (other, _) => panic!("simulator does not handle {other:?}"),
            };
            matched != h.invert_match
        })
}

fn string_matches(m: &StringMatcher, v: &str) -> bool {
    match &m.match_pattern {
        Some(MatchPattern::Exact(e)) => v == e,
        Some(MatchPattern::Prefix(p)) => v.starts_with(p.as_str()),
        other => panic!("simulator does not handle {other:?}"),
    }
}
