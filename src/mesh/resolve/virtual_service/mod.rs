//! VirtualService → `VirtualService`: hosts expanded, destinations checked against services and subsets.
//!
//! One file per concern of Istio's `HTTPRoute`, as Istio's own validation and translation divide it: matching,
//! the action (destinations, redirect, direct response, rewrite), mirrors, retries, fault injection, header
//! operations and CORS. This file resolves the VirtualService and assembles each route from those parts.

mod action;
mod cors;
mod destinations;
mod fault;
mod headers;
mod matching;
mod mirror;
mod retries;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::validate;
use super::{meta_of, Diags};
use crate::mesh::names::resolve_host;
use crate::mesh::{Code, GatewayRef, HttpRoute, Mesh, Meta, Retries, RouteMatch, VirtualService};
use crate::spec::{self, Kind, Sourced};

pub(super) fn resolve(
    items: &[Arc<Sourced<spec::VirtualService>>],
    mesh: &Mesh,
    diags: &mut Diags<'_>,
) -> Vec<VirtualService> {
    let mut out = Vec::new();
    // (gateway, host) → the VirtualService that claimed it first.
    let mut claimed: BTreeMap<(GatewayRef, String), Meta> = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::VirtualService);
        let ns = item.namespace();
        let spec::VirtualService {
            hosts,
            gateways,
            http,
            tls: _,
            tcp: _,
            export_to: _,
        } = &item.value;
        let gateway_refs: Vec<GatewayRef> = if gateways.is_empty() {
            vec![GatewayRef::Mesh]
        } else {
            gateways
                .iter()
                .enumerate()
                .filter_map(|(i, g)| {
                    gateway_ref(mesh, ns, g, &meta, &format!("spec.gateways[{i}]"), diags)
                })
                .collect()
        };
        if hosts.is_empty() {
            diags.error(
                &meta,
                Code::MissingField,
                "spec.hosts",
                "a VirtualService needs at least one host",
            );
        }
        let mut fqdns = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let fqdn = resolve_host(host, ns);
            let field = format!("spec.hosts[{i}]");
            if gateway_refs.contains(&GatewayRef::Mesh) && !mesh.services.contains_key(&fqdn) {
                diags.error(
                    &meta,
                    Code::NotSupportedYet,
                    &field,
                    format!("host `{fqdn}` is not defined by any ServiceEntry; routing sidecar traffic for hosts outside the registry is not supported yet"),
                );
            }
            // Gateways merge VirtualServices that share a host (in namespace/name order, as Istio); sidecars
            // cannot, so there a second claim is an error.
            for g in gateway_refs.iter().filter(|g| **g == GatewayRef::Mesh) {
                match claimed.get(&(g.clone(), fqdn.clone())) {
                    Some(first) => diags.error(
                        &meta,
                        Code::ConflictingMeshHosts,
                        &field,
                        format!("host `{fqdn}` is already routed by {} at {}; merging VirtualServices for sidecars is not supported yet (Istio merges them only on gateways)", first.resource, first.origin),
                    ),
                    None => {
                        claimed.insert((g.clone(), fqdn.clone()), meta.clone());
                    }
                }
            }
            fqdns.push(fqdn);
        }
        let mut routes = Vec::new();
        for (i, route) in http.iter().enumerate() {
            let ctx = HttpRouteContext {
                mesh,
                meta: &meta,
                namespace: ns,
                path: format!("spec.http[{i}]"),
            };
            if let Some(r) = ctx.http_route(route, diags) {
                routes.push(r);
            }
        }
        out.push(VirtualService {
            meta,
            hosts: fqdns,
            gateways: gateway_refs,
            http: routes,
        });
    }
    out.sort_by(|a, b| {
        (&a.meta.resource.namespace, &a.meta.resource.name)
            .cmp(&(&b.meta.resource.namespace, &b.meta.resource.name))
    });
    out
}

fn gateway_ref(
    mesh: &Mesh,
    ns: &str,
    name: &str,
    meta: &Meta,
    field: &str,
    diags: &mut Diags<'_>,
) -> Option<GatewayRef> {
    if name == "mesh" {
        return Some(GatewayRef::Mesh);
    }
    let key = match name.split_once('/') {
        Some((gns, gname)) => format!("{gns}/{gname}"),
        None => format!("{ns}/{name}"),
    };
    if mesh.gateways.contains_key(&key) {
        Some(GatewayRef::Gateway(key))
    } else {
        diags.error(
            meta,
            Code::UnknownGateway,
            field,
            format!("gateway `{key}` is not defined by any Gateway"),
        );
        None
    }
}

/// One HTTP route being resolved: the mesh to check references against, the VirtualService it belongs to, and
/// the route's field path (`spec.http[2]`), which prefixes every diagnostic's field.
struct HttpRouteContext<'a> {
    mesh: &'a Mesh,
    meta: &'a Meta,
    namespace: &'a str,
    path: String,
}

impl HttpRouteContext<'_> {
    /// The path of a field of this route, for diagnostics.
    fn field(&self, tail: &str) -> String {
        format!("{}.{tail}", self.path)
    }

    fn http_route(&self, route: &spec::HttpRoute, diags: &mut Diags<'_>) -> Option<HttpRoute> {
        let errors_before = diags.error_count();
        let spec::HttpRoute {
            name,
            matches,
            route: destinations,
            redirect,
            direct_response,
            delegate: _,
            rewrite,
            timeout,
            retries,
            fault,
            mirror,
            mirrors,
            mirror_percentage,
            mirror_percent: _,
            cors_policy,
            headers,
        } = route;
        let matches: Vec<RouteMatch> = matches
            .iter()
            .enumerate()
            .filter_map(|(j, m)| self.route_match(m, &self.field(&format!("match[{j}]")), diags))
            .collect();
        let action = self.action(
            destinations,
            redirect.as_ref(),
            direct_response.as_ref(),
            diags,
        );
        let timeout =
            validate::opt_duration(diags, self.meta, &self.field("timeout"), timeout.as_ref());
        let retries = match retries {
            None => Retries::Default,
            Some(r) => self.retries(r, diags),
        };
        let fault = fault.as_ref().and_then(|f| self.fault(f, diags));
        let headers = headers
            .as_ref()
            .map(|h| self.headers(h, &self.field("headers"), diags))
            .unwrap_or_default();
        let rewrite = rewrite.as_ref().and_then(|r| self.rewrite(r, diags));
        let resolved_mirrors =
            self.mirrors(mirror.as_ref(), mirror_percentage.as_ref(), mirrors, diags);
        let cors = cors_policy.as_ref().and_then(|c| self.cors(c, diags));
        if fault.is_some() && cors.is_some() {
            // Both live in the route's `typed_per_filter_config` map, and prost encodes a map with two entries in
            // nondeterministic order, which would defeat content-hash versions.
            diags.error(
                self.meta,
                Code::NotSupportedYet,
                self.field("corsPolicy"),
                "combining `fault` and `corsPolicy` in one route is not supported yet",
            );
        }
        if diags.error_count() != errors_before {
            return None;
        }
        Some(HttpRoute {
            name: name.clone(),
            matches,
            action: action?,
            timeout,
            retries,
            fault,
            headers,
            rewrite,
            mirrors: resolved_mirrors,
            cors,
        })
    }
}
