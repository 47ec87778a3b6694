//! Where a route sends traffic: weighted clusters, timeouts, redirects.

use envoy_types::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route_action::{self, HashPolicy},
    RedirectAction, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;

use crate::mesh::names::ClusterName;
use crate::mesh::{Destination, HttpRoute, Mesh, Redirect, Retries, RouteDestination};
use crate::translate::build;

use super::*;

pub(super) fn route_action(
    mesh: &Mesh,
    http: &HttpRoute,
    destinations: &[RouteDestination],
    listener_port: u32,
) -> RouteAction {
    let cluster_of =
        |d: &RouteDestination| destination_cluster(mesh, &d.destination, listener_port);
    let timeout = http
        .timeout
        .map_or_else(build::zero_timeout, build::duration);
    let mut action = match destinations {
        [single] => build::route_action_cluster(&cluster_of(single), timeout),
        many => build::route_action_weighted(
            many.iter()
                .map(|d| {
                    let mut w = build::cluster_weight(&cluster_of(d), d.weight);
                    add_header_operations(&mut w, &d.headers);
                    w
                })
                .collect(),
            timeout,
        ),
    };
    action.retry_policy = match &http.retries {
        Retries::Default => Some(build::default_retry_policy()),
        Retries::Disabled => None,
        Retries::Policy(p) => Some(retry_policy(p)),
    };
    if let Some(rw) = &http.rewrite {
        if let Some(uri) = &rw.uri {
            action.prefix_rewrite = uri.clone();
        }
        if let Some((pattern, substitution)) = &rw.uri_regex {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(build::regex_matcher(pattern)),
                substitution: substitution.clone(),
            });
        }
        if let Some(authority) = &rw.authority {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(authority.clone()),
            );
        }
    }
    action.request_mirror_policies = http
        .mirrors
        .iter()
        .map(|m| mirror(mesh, m, listener_port))
        .collect();
    set_hash_policy(&mut action, hash_policy(mesh, destinations, listener_port));
    action
}

pub(super) fn set_hash_policy(action: &mut RouteAction, policy: Vec<HashPolicy>) {
    if !policy.is_empty() {
        // As Istio: retrying on another host would defeat the stickiness consistent hashing asks for.
        if let Some(r) = action.retry_policy.as_mut() {
            r.retry_host_predicate.clear();
        }
    }
    action.hash_policy = policy;
}

pub(super) fn redirect(r: &Redirect) -> RedirectAction {
    RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        port_redirect: r.port.unwrap_or(0),
        response_code: match r.code {
            302 => RedirectResponseCode::Found,
            303 => RedirectResponseCode::SeeOther,
            307 => RedirectResponseCode::TemporaryRedirect,
            308 => RedirectResponseCode::PermanentRedirect,
            _ => RedirectResponseCode::MovedPermanently,
        } as i32,
        scheme_rewrite_specifier: r.scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: r.uri.clone().map(PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    }
}

/// The cluster a destination names on a listener: `outbound|<port>|<subset>|<host>` with Istio's port choice.
pub(super) fn destination_cluster(mesh: &Mesh, d: &Destination, listener_port: u32) -> String {
    let port = mesh.destination_port(d, listener_port);
    ClusterName::outbound(port, d.subset.as_deref(), &d.host).to_string()
}
