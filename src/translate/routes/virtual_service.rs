//! A VirtualService's `http` routes for one proxy and port: which matches apply, and the route each becomes.

use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource};
use envoy_types::pb::envoy::config::route::v3::{route, DirectResponseAction, Route};
use envoy_types::util::pack_any;

use crate::mesh::{
    labels_match, HttpRoute, Mesh, RouteAction as MeshAction, RouteMatch, VirtualService,
};
use crate::translate::build;

use super::*;

/// One Envoy route per `http[]` entry and per `match[]` within it, in order, stopping after the first catch-all
/// (Istio adds nothing after it, so unmatched requests get a 404).
pub(super) fn vs_routes(mesh: &Mesh, vs: &VirtualService, scope: &Scope<'_>) -> Vec<Route> {
    let mut out = Vec::new();
    for http in &vs.http {
        let matches: Vec<Option<&RouteMatch>> = if http.matches.is_empty() {
            vec![None]
        } else {
            let applicable: Vec<_> = http
                .matches
                .iter()
                .filter(|m| applies(m, scope))
                .map(Some)
                .collect();
            if applicable.is_empty() {
                continue;
            }
            applicable
        };
        for m in matches {
            out.push(translate_route(mesh, vs, http, m, scope));
            if m.is_none_or(RouteMatch::is_catch_all) {
                return out;
            }
        }
    }
    out
}

/// Istio's `sourceMatchHTTP` plus the port and gateway conditions.
pub(super) fn applies(m: &RouteMatch, scope: &Scope<'_>) -> bool {
    // Exhaustive, as in every translation of a mesh type: a new field does not compile until it is decided.
    let RouteMatch {
        source_labels,
        source_namespace,
        port,
        gateways,
        // What a request must look like: `route_match`'s. The name: `translate_route`'s.
        name: _,
        uri: _,
        scheme: _,
        method: _,
        authority: _,
        headers: _,
        without_headers: _,
        query_params: _,
        ignore_uri_case: _,
    } = m;
    labels_match(source_labels, scope.labels)
        && source_namespace
            .as_deref()
            .is_none_or(|ns| ns == scope.namespace)
        && port.is_none_or(|p| p == scope.port)
        && (gateways.is_empty() || gateways.contains(scope.gateway))
}

pub(super) fn translate_route(
    mesh: &Mesh,
    vs: &VirtualService,
    http: &HttpRoute,
    m: Option<&RouteMatch>,
    scope: &Scope<'_>,
) -> Route {
    let HttpRoute {
        name: route_name,
        action: mesh_action,
        fault,
        cors,
        headers,
        // Which requests: `vs_routes` and `route_match`. How they are forwarded: `route_action`.
        matches: _,
        timeout: _,
        retries: _,
        rewrite: _,
        mirrors: _,
    } = http;
    let name = match (route_name.as_deref(), m.and_then(|m| m.name.as_deref())) {
        (Some(h), Some(n)) => format!("{h}.{n}"),
        (None, Some(n)) => format!(".{n}"),
        (Some(h), None) => h.to_owned(),
        (None, None) => String::new(),
    };
    let (action, operation) = match mesh_action {
        MeshAction::Route(destinations) => {
            let first = destinations.first().map(|d| {
                format!(
                    "{}:{}/*",
                    d.destination.host,
                    mesh.destination_port(&d.destination, scope.port)
                )
            });
            (
                route::Action::Route(route_action(mesh, http, destinations, scope.port)),
                first,
            )
        }
        MeshAction::Redirect(r) => (route::Action::Redirect(redirect(r)), None),
        MeshAction::DirectResponse { status, body } => (
            route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            None,
        ),
    };
    let mut r = build::route(&name, route_match(m), action);
    r.decorator = Some(build::decorator(&operation.unwrap_or_else(|| {
        format!(
            "{}:{}/*",
            vs.hosts.first().unwrap_or(&vs.meta.resource.name),
            scope.port
        )
    })));
    r.metadata = Some(build::istio_metadata(&vs.meta.istio_config_path()));
    // At most one of the two (mesh rejects both on one route); see build::route's note on maps.
    if let Some(f) = fault {
        r.typed_per_filter_config =
            build::per_filter_config(build::FAULT_FILTER, pack_any(fault_filter_config(f)));
    } else if let Some(c) = cors {
        r.typed_per_filter_config =
            build::per_filter_config(build::CORS_FILTER, pack_any(cors_policy(c)));
    }
    add_header_operations(&mut r, headers);
    // A lone destination is a plain `cluster`, which has no header fields of its own, so its per-destination
    // headers go on the route (as in Istio).
    if let MeshAction::Route(destinations) = mesh_action {
        if let [single] = destinations.as_slice() {
            add_header_operations(&mut r, &single.headers);
        }
    }
    r
}
