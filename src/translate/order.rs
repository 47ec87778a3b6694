//! The one place output order is decided: every resource list and every virtual host list by name. Routes
//! inside a virtual host are never reordered: VirtualService order is match order.

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use super::Resources;

pub(super) fn sorted(mut r: Resources) -> Resources {
    r.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    r.endpoints
        .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    r.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    r.routes.sort_by(|a, b| a.name.cmp(&b.name));
    for rc in &mut r.routes {
        sort_virtual_hosts(rc);
    }
    r
}

pub(super) fn sort_virtual_hosts(rc: &mut RouteConfiguration) {
    rc.virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
}
