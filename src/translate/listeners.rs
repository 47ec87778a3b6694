//! LDS. Interception mode NONE: listeners bind real addresses instead of receiving iptables-redirected traffic
//! through Istio's `virtualOutbound`/`virtualInbound` (15001/15006).

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::listener::v3::Listener;

use super::build::{self, Routes};
use super::routes;
use crate::mesh::names::{gateway_route_config_name, listener_name, sidecar_route_config_name};
use crate::mesh::{Mesh, Router, Service, Sidecar};

/// Istio names outbound listeners after their wildcard bind address.
const WILDCARD: &str = "0.0.0.0";

/// `inbound`: the ports the sidecar's workload serves ([`super::inbound_ports`]); `outbound_ports`: every
/// service port in the mesh ([`super::outbound_ports`]).
pub(super) fn sidecar(
    sidecar: &Sidecar,
    inbound: &[(u32, &Service)],
    outbound_ports: &BTreeSet<u32>,
) -> Vec<Listener> {
    let mut out = Vec::new();
    // Inbound: `<pod IP>:<port>`, where other sidecars' EDS endpoints point, to the local app.
    for &(port, service) in inbound {
        let name = listener_name(&sidecar.ip, port);
        let hcm = build::http_connection_manager(
            &format!("inbound_{}_{port}", sidecar.ip),
            Routes::Inline(Box::new(routes::inbound(port, service))),
            false,
        );
        out.push(build::listener(
            &name,
            build::socket_address(&sidecar.ip, port),
            vec![build::filter_chain(vec![build::hcm_filter(hcm)])],
        ));
    }
    // Outbound: one HTTP listener per service port in the mesh. Istio names it `0.0.0.0_<port>`; it binds
    // `SWITCHYARD_OUTBOUND_IP:<port>` instead of 0.0.0.0 because, without iptables, each sidecar on the host needs
    // its own address for the same port. The name is kept so config dumps read like Istio's.
    for &port in outbound_ports {
        let name = listener_name(WILDCARD, port);
        let hcm = build::http_connection_manager(
            &format!("outbound_{WILDCARD}_{port}"),
            Routes::Rds(sidecar_route_config_name(port)),
            false,
        );
        out.push(build::listener(
            &name,
            build::socket_address(&sidecar.outbound_ip, port),
            vec![build::filter_chain(vec![build::hcm_filter(hcm)])],
        ));
    }
    out
}

/// The ingress gateway: one listener per server port of the Gateways it serves, at the proxy's instance IP.
pub(super) fn router(mesh: &Mesh, router: &Router) -> Vec<Listener> {
    let ports: BTreeSet<u32> = router
        .gateways
        .iter()
        .filter_map(|k| mesh.gateways.get(k))
        .flat_map(|g| g.servers.iter().map(|s| s.port))
        .collect();
    ports
        .into_iter()
        .map(|port| {
            // Gateways face clients directly, so the client address is the remote address (Istio sets this too).
            let hcm = build::http_connection_manager(
                &format!("outbound_{WILDCARD}_{port}"),
                Routes::Rds(gateway_route_config_name(port)),
                true,
            );
            build::listener(
                &listener_name(WILDCARD, port),
                build::socket_address(&router.ip, port),
                vec![build::filter_chain(vec![build::hcm_filter(hcm)])],
            )
        })
        .collect()
}
