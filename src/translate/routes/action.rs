//! Where a route sends traffic: weighted clusters, timeouts, redirects.

use envoy_types::pb::envoy::config::route::v3::{
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    route_action::{self, HashPolicy},
    RedirectAction, RouteAction,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;

use crate::mesh::names::ClusterName;
use crate::mesh::{Destination, HttpRoute, Mesh, Redirect, Retries, Rewrite, RouteDestination};
use crate::translate::build;

use super::*;

pub(super) fn route_action(
    mesh: &Mesh,
    http: &HttpRoute,
    destinations: &[RouteDestination],
    listener_port: u32,
) -> RouteAction {
    let HttpRoute {
        timeout,
        retries,
        rewrite,
        mirrors,
        // Which requests and what else happens to them: `translate_route`'s.
        name: _,
        matches: _,
        action: _,
        fault: _,
        headers: _,
        cors: _,
    } = http;
    let cluster_of = |d: &Destination| destination_cluster(mesh, d, listener_port);
    let timeout = timeout.map_or_else(build::zero_timeout, build::duration);
    let mut action = match destinations {
        [single] => build::route_action_cluster(&cluster_of(&single.destination), timeout),
        many => build::route_action_weighted(
            many.iter()
                .map(|d| {
                    // A lone destination's headers go on the route instead (`translate_route`).
                    let RouteDestination {
                        destination,
                        weight,
                        headers,
                    } = d;
                    let mut w = build::cluster_weight(&cluster_of(destination), *weight);
                    add_header_operations(&mut w, headers);
                    w
                })
                .collect(),
            timeout,
        ),
    };
    action.retry_policy = match retries {
        Retries::Default => Some(build::default_retry_policy()),
        Retries::Disabled => None,
        Retries::Policy(p) => Some(retry_policy(p)),
    };
    if let Some(rw) = rewrite {
        let Rewrite {
            uri,
            authority,
            uri_regex,
        } = rw;
        if let Some(uri) = uri {
            action.prefix_rewrite = uri.clone();
        }
        if let Some((pattern, substitution)) = uri_regex {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(build::regex_matcher(pattern)),
                substitution: substitution.clone(),
            });
        }
        if let Some(authority) = authority {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(authority.clone()),
            );
        }
    }
    action.request_mirror_policies = mirrors
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
    let Redirect {
        uri,
        authority,
        port,
        scheme,
        code,
    } = r;
    RedirectAction {
        host_redirect: authority.clone().unwrap_or_default(),
        port_redirect: port.unwrap_or(0),
        response_code: match code {
            302 => RedirectResponseCode::Found,
            303 => RedirectResponseCode::SeeOther,
            307 => RedirectResponseCode::TemporaryRedirect,
            308 => RedirectResponseCode::PermanentRedirect,
            _ => RedirectResponseCode::MovedPermanently,
        } as i32,
        scheme_rewrite_specifier: scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: uri.clone().map(PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    }
}

/// The cluster a destination names on a listener: `outbound|<port>|<subset>|<host>` with Istio's port choice.
pub(super) fn destination_cluster(mesh: &Mesh, d: &Destination, listener_port: u32) -> String {
    let port = mesh.destination_port(d, listener_port);
    ClusterName::outbound(port, d.subset.as_deref(), &d.host).to_string()
}
