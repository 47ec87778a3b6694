//! `envoy.config.route.v3`.
//!
//! A note on maps: prost encodes `map<>` fields in `HashMap` iteration order, which differs between runs. Every
//! map built here (`typed_per_filter_config`, `filter_metadata`) therefore holds at most one entry, so the encoded
//! bytes, and the content-hash versions derived from them, are stable.

#[allow(clippy::disallowed_types)]
use std::collections::HashMap;

use envoy_types::pb::envoy::config::route::v3::{
    retry_policy::RetryHostPredicate, route, route_action, route_match,
    weighted_cluster::ClusterWeight, Decorator, HeaderMatcher, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use envoy_types::util::pack_any;

use super::{seconds, u32_value};

/// Istio's route configuration shape (`httproute.go`): clusters are not validated (they may arrive later over
/// CDS), ports are ignored when matching hosts, direct response bodies may be up to 1 MiB.
pub fn route_configuration(name: &str, virtual_hosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts,
        validate_clusters: Some(BoolValue { value: false }),
        max_direct_response_body_size_bytes: Some(u32_value(1024 * 1024)),
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

/// Istio's virtual host: the attempt count is passed upstream (`x-envoy-attempt-count`) so apps can tell retries.
pub fn virtual_host(name: &str, domains: Vec<String>, routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.to_owned(),
        domains,
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}

pub fn route(name: &str, matcher: RouteMatch, action: route::Action) -> Route {
    Route {
        name: name.to_owned(),
        r#match: Some(matcher),
        action: Some(action),
        ..Default::default()
    }
}

pub fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.to_owned())),
        ..Default::default()
    }
}

pub fn decorator(operation: &str) -> Decorator {
    Decorator {
        operation: operation.to_owned(),
        ..Default::default()
    }
}

/// A single `typed_per_filter_config` entry (see the module note on maps).
#[allow(clippy::disallowed_types)]
pub fn per_filter_config(filter: &str, config: Any) -> HashMap<String, Any> {
    HashMap::from([(filter.to_owned(), config)])
}

pub fn header_matcher(
    name: &str,
    spec: envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier,
) -> HeaderMatcher {
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// A route action to one cluster with Istio's timeout handling: the VirtualService timeout, or 0s (disabled)
/// instead of Envoy's 15 s default, mirrored into `max_grpc_timeout` as `setTimeout` does.
pub fn route_action_cluster(
    cluster: &str,
    timeout: envoy_types::pb::google::protobuf::Duration,
) -> RouteAction {
    route_action(
        route_action::ClusterSpecifier::Cluster(cluster.to_owned()),
        timeout,
    )
}

pub fn route_action_weighted(
    clusters: Vec<ClusterWeight>,
    timeout: envoy_types::pb::google::protobuf::Duration,
) -> RouteAction {
    route_action(
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        }),
        timeout,
    )
}

#[allow(deprecated)] // `max_grpc_timeout`: Istio still sets it; its replacement regressed (Istio's setTimeout).
fn route_action(
    specifier: route_action::ClusterSpecifier,
    timeout: envoy_types::pb::google::protobuf::Duration,
) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(specifier),
        timeout: Some(timeout),
        max_grpc_timeout: Some(timeout),
        ..Default::default()
    }
}

pub fn cluster_weight(name: &str, weight: u32) -> ClusterWeight {
    ClusterWeight {
        name: name.to_owned(),
        weight: Some(u32_value(weight)),
        ..Default::default()
    }
}

/// Istio's mesh-wide default retry policy (`route/retry/retry.go`). 503 is not retried by default any more.
pub fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .to_owned(),
        num_retries: Some(u32_value(2)),
        retry_host_predicate: vec![previous_hosts_predicate()],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}

pub fn previous_hosts_predicate() -> RetryHostPredicate {
    RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts".to_owned(),
        config_type: Some(envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType::TypedConfig(
            pack_any(PreviousHostsPredicate {}),
        )),
    }
}

/// Istio's inbound route retry: only requests that never reached the app are retried.
pub fn inbound_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: "reset-before-request".to_owned(),
        num_retries: Some(u32_value(2)),
        ..Default::default()
    }
}

pub fn zero_timeout() -> envoy_types::pb::google::protobuf::Duration {
    seconds(0)
}
