//! Where a route sends traffic: `route` destinations with their weights, each checked against the services,
//! ports and subsets it names.

use super::HttpRouteContext;
use crate::mesh::names::resolve_host;
use crate::mesh::resolve::Diags;
use crate::mesh::{Code, Destination, RouteDestination};
use crate::spec;

impl HttpRouteContext<'_> {
    pub(super) fn destinations(
        &self,
        list: &[spec::HttpRouteDestination],
        diags: &mut Diags<'_>,
    ) -> Option<Vec<RouteDestination>> {
        let errors_before = diags.error_count();
        let mut out = Vec::new();
        for (k, d) in list.iter().enumerate() {
            let field = self.field(&format!("route[{k}]"));
            let weight = match d.weight {
                Some(w) if w < 0 => {
                    diags.error(
                        self.meta,
                        Code::InvalidWeights,
                        format!("{field}.weight"),
                        format!("weight {w} is negative"),
                    );
                    0
                }
                Some(w) if w > i64::from(i32::MAX) => {
                    // Istio's weight is an int32; a larger value is rejected there, never clamped.
                    diags.error(
                        self.meta,
                        Code::InvalidWeights,
                        format!("{field}.weight"),
                        format!("weight {w} is larger than {}", i32::MAX),
                    );
                    0
                }
                Some(w) => u32::try_from(w).unwrap_or(0),
                // A lone destination takes all traffic whatever its weight; Istio uses `route.cluster` for it.
                None if list.len() == 1 => 100,
                None => 0,
            };
            let headers = d
                .headers
                .as_ref()
                .map(|h| self.headers(h, &format!("{field}.headers"), diags))
                .unwrap_or_default();
            if let Some(destination) =
                self.destination(&d.destination, &format!("{field}.destination"), diags)
            {
                out.push(RouteDestination {
                    destination,
                    weight,
                    headers,
                });
            }
        }
        if diags.error_count() != errors_before {
            return None;
        }
        let total: u64 = out.iter().map(|d| u64::from(d.weight)).sum();
        if total > u64::from(u32::MAX) {
            // Envoy's weighted_clusters sum is a uint32.
            diags.error(
                self.meta,
                Code::InvalidWeights,
                self.field("route"),
                format!("destination weights sum to {total}, more than {}", u32::MAX),
            );
            return None;
        }
        if out.len() > 1 {
            // Istio drops weight-0 destinations; a lone destination keeps all traffic even at weight 0.
            out.retain(|d| d.weight > 0);
            if out.is_empty() {
                diags.error(
                    self.meta,
                    Code::InvalidWeights,
                    self.field("route"),
                    "all destination weights are zero, so no traffic could be routed",
                );
                return None;
            }
        }
        Some(out)
    }

    pub(super) fn destination(
        &self,
        d: &spec::Destination,
        field: &str,
        diags: &mut Diags<'_>,
    ) -> Option<Destination> {
        let host = resolve_host(&d.host, self.namespace);
        let Some(service) = self.mesh.services.get(&host) else {
            diags.error(
                self.meta,
                Code::UnknownHost,
                format!("{field}.host"),
                format!("host `{host}` is not defined by any ServiceEntry"),
            );
            return None;
        };
        if let Some(port) = &d.port {
            if service.port(port.number).is_none() {
                let known: Vec<String> =
                    service.ports.iter().map(|p| p.number.to_string()).collect();
                diags.error(
                    self.meta,
                    Code::UnknownPort,
                    format!("{field}.port.number"),
                    format!(
                        "service `{host}` has no port {} (it has {})",
                        port.number,
                        known.join(", ")
                    ),
                );
                return None;
            }
        } else if service.ports.len() > 1 {
            // Without a port the cluster's port is the listener's; on a gateway (or a sidecar listener of another
            // service) that is none of this service's ports, so the route would name a cluster that does not exist.
            let known: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
            diags.error(
                self.meta,
                Code::PortRequired,
                format!("{field}.port"),
                format!(
                    "service `{host}` has several ports ({}); the destination must name one with `port.number`",
                    known.join(", ")
                ),
            );
            return None;
        }
        if let Some(subset) = &d.subset {
            let found = self
                .mesh
                .destination_rules
                .get(&host)
                .is_some_and(|dr| dr.subset(subset).is_some());
            if !found {
                let message = match self.mesh.destination_rules.get(&host) {
                    Some(dr) => format!("subset `{subset}` is not defined by {} (subsets: {})", dr.meta.resource, dr.subsets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")),
                    None => format!("subset `{subset}` is used but no DestinationRule defines subsets for host `{host}`"),
                };
                diags.error(
                    self.meta,
                    Code::UnknownSubset,
                    format!("{field}.subset"),
                    message,
                );
                return None;
            }
        }
        Some(Destination {
            host,
            subset: d.subset.clone(),
            port: d.port.map(|p| p.number),
        })
    }
}
