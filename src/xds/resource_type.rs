//! The xDS resource types Switchyard serves, declared in ADS push order.

use std::fmt;

/// The order of the variants is the push order (make-before-break): a cluster exists before its endpoints
/// arrive, and both exist before a listener or route can point at them. `ALL` relies on it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl ResourceType {
    /// Every type, in push order.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    /// Constants rather than `prost::Name::type_url()`, which allocates: this runs on every request. A test
    /// checks them against the messages' own names.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(type_url: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|t| t.type_url() == type_url)
    }

    /// Listeners and clusters are requested as a whole (wildcard); routes and endpoints by name.
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }

    /// Index into per-type arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The short name Envoy's stats and Istio's tools use (`CDS`, `EDS`, `LDS`, `RDS`).
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoint => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// A fixed-size map from resource type to `T`, indexed in push order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerType<T>([T; 4]);

impl<T> PerType<T> {
    pub fn from_fn(mut f: impl FnMut(ResourceType) -> T) -> Self {
        PerType(ResourceType::ALL.map(&mut f))
    }

    pub fn iter(&self) -> impl Iterator<Item = (ResourceType, &T)> {
        ResourceType::ALL.into_iter().zip(self.0.iter())
    }
}

impl<T> std::ops::Index<ResourceType> for PerType<T> {
    type Output = T;
    fn index(&self, t: ResourceType) -> &T {
        &self.0[t.index()]
    }
}

impl<T> std::ops::IndexMut<ResourceType> for PerType<T> {
    fn index_mut(&mut self, t: ResourceType) -> &mut T {
        &mut self.0[t.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use prost::Name;

    #[test]
    fn type_urls_round_trip_and_order_is_push_order() {
        assert_eq!(ResourceType::Cluster.type_url(), Cluster::type_url());
        assert_eq!(
            ResourceType::Endpoint.type_url(),
            ClusterLoadAssignment::type_url()
        );
        assert_eq!(ResourceType::Listener.type_url(), Listener::type_url());
        assert_eq!(
            ResourceType::Route.type_url(),
            RouteConfiguration::type_url()
        );
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
        }
        assert_eq!(
            ResourceType::Cluster.type_url(),
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
        let mut sorted = ResourceType::ALL;
        sorted.sort();
        assert_eq!(sorted, ResourceType::ALL);
        assert_eq!(
            ResourceType::from_type_url("type.googleapis.com/nope"),
            None
        );
    }
}
