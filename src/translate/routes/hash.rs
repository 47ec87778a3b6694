//! Consistent-hash policies from the destinations' DestinationRules (`hashByService`).

use envoy_types::pb::envoy::config::route::v3::route_action::{hash_policy, HashPolicy};

use crate::mesh::{HashKey, LoadBalancer, Mesh, RouteDestination};
use crate::translate::build;

/// Consistent-hash routing needs a hash policy on the route; Istio takes it from the destination's
/// DestinationRule, and only when every destination agrees on it.
pub(super) fn hash_policy(
    mesh: &Mesh,
    destinations: &[RouteDestination],
    listener_port: u32,
) -> Vec<HashPolicy> {
    let keys: Vec<Option<HashKey>> = destinations
        .iter()
        .map(|d| {
            let port = mesh.destination_port(&d.destination, listener_port);
            match mesh
                .policy_for(&d.destination.host, d.destination.subset.as_deref(), port)
                .load_balancer
            {
                Some(LoadBalancer::ConsistentHash(ch)) => Some(ch.key),
                _ => None,
            }
        })
        .collect();
    let Some(Some(first)) = keys.first() else {
        return Vec::new();
    };
    if keys.iter().any(|k| k.as_ref() != Some(first)) {
        return Vec::new();
    }
    let specifier =
        match first {
            HashKey::Header(h) => hash_policy::PolicySpecifier::Header(hash_policy::Header {
                header_name: h.clone(),
                ..Default::default()
            }),
            HashKey::Cookie { name, path, ttl } => {
                hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                    name: name.clone(),
                    path: path.clone().unwrap_or_default(),
                    ttl: ttl.map(build::duration),
                    ..Default::default()
                })
            }
            HashKey::SourceIp => hash_policy::PolicySpecifier::ConnectionProperties(
                hash_policy::ConnectionProperties { source_ip: true },
            ),
            HashKey::QueryParameter(q) => {
                hash_policy::PolicySpecifier::QueryParameter(hash_policy::QueryParameter {
                    name: q.clone(),
                })
            }
        };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    }]
}
