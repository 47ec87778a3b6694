//! Listeners and the HTTP connection manager.

use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier, UpgradeConfig},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::ads_config_source;

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

pub fn listener(name: &str, address: Address, filter_chains: Vec<FilterChain>) -> Listener {
    Listener {
        name: name.to_owned(),
        address: Some(address),
        filter_chains,
        ..Default::default()
    }
}

pub fn filter_chain(filters: Vec<Filter>) -> FilterChain {
    FilterChain {
        filters,
        ..Default::default()
    }
}

pub fn hcm_filter(hcm: HttpConnectionManager) -> Filter {
    Filter {
        name: HCM_FILTER.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
    }
}

/// Where the connection manager's routes come from.
pub enum Routes {
    Rds(String),
    Inline(Box<RouteConfiguration>),
}

pub fn http_connection_manager(
    stat_prefix: &str,
    routes: Routes,
    use_remote_address: bool,
) -> HttpConnectionManager {
    let route_specifier = match routes {
        Routes::Rds(name) => RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: name,
        }),
        Routes::Inline(config) => RouteSpecifier::RouteConfig(*config),
    };
    HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: stat_prefix.to_owned(),
        http_filters: http_filters(),
        use_remote_address: use_remote_address.then_some(BoolValue { value: true }),
        route_specifier: Some(route_specifier),
        // As Istio: without it Envoy answers a WebSocket upgrade with 403.
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The one place the HTTP filter chain order is decided. Every connection manager gets the same chain.
pub fn http_filters() -> Vec<HttpFilter> {
    vec![
        // 1. Fault: empty here; routes switch it on through `typed_per_filter_config`. It must run before the
        //    router so an aborted request never reaches an upstream, and Envoy only honours per-route config for
        //    filters present in the chain (Istio: "TypedPerFilterConfig in route needs these filters").
        http_filter(FAULT_FILTER, pack_any(HttpFault::default())),
        // 2. CORS: also configured per route; answers preflights before routing, so it too precedes the router.
        http_filter(CORS_FILTER, pack_any(Cors::default())),
        // 3. Router: terminal, must be last; Envoy rejects a chain whose last filter is not terminal.
        http_filter(ROUTER_FILTER, pack_any(Router::default())),
    ]
}

fn http_filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}
