//! Sidecars' outbound route configurations (one per port and route scope) and the inline inbound route.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::route::v3::{route, Route, RouteConfiguration};

use crate::mesh::names::{sidecar_route_config_name, virtual_host_name, ClusterName};
use crate::mesh::{Destination, GatewayRef, Mesh, RouteDestination, RouteScope, Service};
use crate::translate::build;

use super::*;

/// The outbound route configuration for `port` of every sidecar in `route_scope`.
pub(in crate::translate) fn sidecar(
    mesh: &Mesh,
    route_scope: &RouteScope,
    port: u32,
) -> RouteConfiguration {
    let scope = Scope {
        port,
        gateway: &GatewayRef::Mesh,
        labels: &route_scope.labels,
        namespace: &route_scope.namespace,
    };
    // Envoy rejects a route configuration that lists one domain in two virtual hosts; short forms can
    // collide (a ServiceEntry host `reviews.default` and `reviews.default.svc.cluster.local`), so the
    // first service by host name keeps a contested domain.
    let mut used: BTreeSet<String> = BTreeSet::new();
    let egress = route_scope.egress.as_deref();
    let vhosts = mesh
        .services
        .values()
        .filter(|s| s.port(port).is_some() && mesh.reaches(egress, s))
        .map(|service| {
            let vs = mesh.virtual_services.iter().find(|vs| {
                vs.gateways.contains(&GatewayRef::Mesh) && vs.hosts.contains(&service.hostname)
            });
            // A VirtualService none of whose routes apply to this proxy (sourceLabels etc.) is skipped
            // entirely, so the service falls back to its default route, as in Istio.
            let routes = vs
                .map(|vs| vs_routes(mesh, vs, &scope))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| vec![default_route(mesh, service, port)]);
            let name = virtual_host_name(&service.hostname, port);
            let domains = domains(service, &route_scope.namespace)
                .into_iter()
                .filter(|d| used.insert(d.to_ascii_lowercase()))
                .collect();
            build::virtual_host(&name, domains, routes)
        })
        .filter(|vh| !vh.domains.is_empty())
        .collect();
    // Istio ends the list with an `allow_any` vhost (`*` → PassthroughCluster). Without iptables there is
    // no original destination to pass through to, so unknown hosts get Envoy's 404 instead.
    build::route_configuration(&sidecar_route_config_name(port), vhosts)
}

/// Istio's `generateVirtualHostDomains` with ports ignored: the FQDN, its absolute form, and the shorter
/// Kubernetes forms (the bare name only for proxies in the service's namespace), then the VIPs.
pub(super) fn domains(service: &Service, proxy_namespace: &str) -> Vec<String> {
    let host = &service.hostname;
    let mut out = vec![host.clone(), format!("{host}.")];
    if let Some((name, namespace)) = host
        .strip_suffix(&format!(".svc.{}", crate::mesh::names::CLUSTER_DOMAIN))
        .and_then(|prefix| prefix.split_once('.'))
        .filter(|(_, ns)| !ns.contains('.'))
    {
        if namespace == proxy_namespace {
            out.push(name.to_owned());
        }
        out.push(format!("{name}.{namespace}.svc"));
        out.push(format!("{name}.{namespace}"));
    }
    out.extend(service.addresses.iter().cloned());
    out
}

/// Istio's route for a service without a VirtualService (`buildSidecarVirtualHostForService`).
pub(super) fn default_route(mesh: &Mesh, service: &Service, port: u32) -> Route {
    let cluster = ClusterName::outbound(port, None, &service.hostname).to_string();
    let mut action = build::route_action_cluster(&cluster, build::zero_timeout());
    action.retry_policy = Some(build::default_retry_policy());
    // Istio's `hashByService`: the default route hashes too when the DestinationRule asks for it.
    let target = RouteDestination {
        destination: Destination {
            host: service.hostname.clone(),
            subset: None,
            port: Some(port),
        },
        weight: 100,
        headers: Default::default(),
    };
    set_hash_policy(&mut action, hash_policy(mesh, &[target], port));
    let mut r = build::route(
        "default",
        build::prefix_match("/"),
        route::Action::Route(action),
    );
    r.decorator = Some(build::decorator(&format!("{}:{port}/*", service.hostname)));
    // Istio leaves the default route without `istio.config`; Switchyard names the ServiceEntry so that every
    // route traces back to a file.
    r.metadata = Some(build::istio_metadata(&service.meta.istio_config_path()));
    r
}

/// The inline route of an inbound listener: everything to the local app.
pub(in crate::translate) fn inbound(port: u32, service: &Service) -> RouteConfiguration {
    let cluster = ClusterName::inbound(port).to_string();
    let mut action = build::route_action_cluster(&cluster, build::zero_timeout());
    action.retry_policy = Some(build::inbound_retry_policy());
    let mut r = build::route(
        "default",
        build::prefix_match("/"),
        route::Action::Route(action),
    );
    r.decorator = Some(build::decorator(&format!("{}:{port}/*", service.hostname)));
    let vhost = build::virtual_host(
        &format!("inbound|http|{port}"),
        vec!["*".to_owned()],
        vec![r],
    );
    build::route_configuration(&cluster, vec![vhost])
}
