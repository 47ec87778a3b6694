//! Names Envoy sees, each built and parsed in one place so that the two can never disagree.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// The cluster domain Istio assumes for Kubernetes-style names.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Istio's subset key: `outbound|9080|v1|reviews.default.svc.cluster.local`, `outbound|9080||reviews…` for the
/// default cluster, `inbound|9080||` for the local app (`BuildSubsetKey` / `ParseSubsetKey`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClusterName {
    pub direction: Direction,
    pub port: u32,
    pub subset: Option<String>,
    pub host: String,
}

impl ClusterName {
    pub fn outbound(port: u32, subset: Option<&str>, host: &str) -> ClusterName {
        ClusterName {
            direction: Direction::Outbound,
            port,
            subset: subset.filter(|s| !s.is_empty()).map(str::to_owned),
            host: host.to_owned(),
        }
    }

    pub fn inbound(port: u32) -> ClusterName {
        ClusterName {
            direction: Direction::Inbound,
            port,
            subset: None,
            host: String::new(),
        }
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}|{}",
            self.direction.as_str(),
            self.port,
            self.subset.as_deref().unwrap_or(""),
            self.host
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cluster name of the form `<inbound|outbound>|<port>|<subset>|<host>`")]
pub struct ParseClusterNameError(pub String);

impl FromStr for ClusterName {
    type Err = ParseClusterNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseClusterNameError(s.to_owned());
        let mut parts = s.splitn(4, '|');
        let direction = match parts.next() {
            Some("inbound") => Direction::Inbound,
            Some("outbound") => Direction::Outbound,
            _ => return Err(err()),
        };
        let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let subset = parts.next().ok_or_else(err)?;
        let host = parts.next().ok_or_else(err)?;
        if host.contains('|') {
            return Err(err());
        }
        Ok(ClusterName {
            direction,
            port,
            subset: (!subset.is_empty()).then(|| subset.to_owned()),
            host: host.to_owned(),
        })
    }
}

/// Istio's `ResolveShortnameToFQDN`: a host without a dot is a Kubernetes short name in the config's namespace.
/// `*` and names with a dot are kept verbatim.
pub fn resolve_host(host: &str, namespace: &str) -> String {
    if host == "*" || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
    }
}

/// The virtual host name Istio gives a service port: `reviews.default.svc.cluster.local:9080`.
pub fn virtual_host_name(host: &str, port: u32) -> String {
    format!("{host}:{port}")
}

/// Outbound HTTP route configuration name on a sidecar: the port (`"9080"`).
pub fn sidecar_route_config_name(port: u32) -> String {
    port.to_string()
}

/// Route configuration name on a gateway: `http.8080`.
pub fn gateway_route_config_name(port: u32) -> String {
    format!("http.{port}")
}

/// Istio's `getListenerName`: `<bind>_<port>`.
pub fn listener_name(bind: &str, port: u32) -> String {
    format!("{bind}_{port}")
}

/// Istio's config path for metadata: `/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews`.
pub fn istio_config_path(kind_segment: &str, namespace: &str, name: &str) -> String {
    format!("/apis/networking.istio.io/v1/namespaces/{namespace}/{kind_segment}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip() {
        let cases = [
            (
                ClusterName::outbound(9080, Some("v1"), "reviews.default.svc.cluster.local"),
                "outbound|9080|v1|reviews.default.svc.cluster.local",
            ),
            (
                ClusterName::outbound(9080, None, "reviews.default.svc.cluster.local"),
                "outbound|9080||reviews.default.svc.cluster.local",
            ),
            (ClusterName::inbound(9080), "inbound|9080||"),
        ];
        for (name, text) in cases {
            assert_eq!(name.to_string(), text);
            assert_eq!(text.parse::<ClusterName>(), Ok(name));
        }
    }

    #[test]
    fn rejects_malformed_cluster_names() {
        for bad in [
            "",
            "outbound",
            "outbound|x|v1|h",
            "sideways|1||h",
            "outbound|1|v1",
        ] {
            assert!(bad.parse::<ClusterName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn short_names_expand_in_the_config_namespace() {
        assert_eq!(
            resolve_host("reviews", "default"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.other.svc.cluster.local", "default"),
            "reviews.other.svc.cluster.local"
        );
        assert_eq!(resolve_host("*", "default"), "*");
    }
}
