//! The node identity contract (`docs/proxy-identity.md`): how an Envoy names itself in its node id and metadata.
//! Below both `mesh` (which maps a node to the proxy it is) and `xds` (which checks a node against the
//! certificate of its connection), so neither has to reach into the other.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind as ValueKind, Struct};

/// Metadata keys (Istio's names where Istio has one).
pub mod keys {
    pub const NAMESPACE: &str = "NAMESPACE";
    pub const LABELS: &str = "LABELS";
    pub const WORKLOAD_NAME: &str = "WORKLOAD_NAME";
    pub const INSTANCE_IPS: &str = "INSTANCE_IPS";
    pub const INTERCEPTION_MODE: &str = "INTERCEPTION_MODE";
    pub const APP_IP: &str = "SWITCHYARD_APP_IP";
    pub const OUTBOUND_IP: &str = "SWITCHYARD_OUTBOUND_IP";
}

/// A node id or metadata that does not follow the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("node id `{0}` is not of the form `<sidecar|router>~<ip>~<name>.<namespace>~<namespace>.svc.cluster.local`")]
    BadNodeId(String),
    #[error("node metadata `{key}` is invalid: {reason}")]
    BadMetadata { key: &'static str, reason: String },
}

/// The parts of `node.id`: `type~ip~name.namespace~namespace.svc.cluster.local`.
pub struct NodeId<'a> {
    pub kind: &'a str,
    pub ip: &'a str,
    pub name: &'a str,
    pub namespace: &'a str,
}

pub fn parse_node_id(id: &str) -> Result<NodeId<'_>, NodeIdError> {
    let parts: Vec<&str> = id.split('~').collect();
    let [kind, ip, workload, _domain] = parts.as_slice() else {
        return Err(NodeIdError::BadNodeId(id.to_owned()));
    };
    let (name, namespace) = workload
        .split_once('.')
        .ok_or_else(|| NodeIdError::BadNodeId(id.to_owned()))?;
    Ok(NodeId {
        kind,
        ip,
        name,
        namespace,
    })
}

/// How people name a proxy, as istioctl does: `reviews-v2.default` for
/// `sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local`; an id outside the contract stays whole.
pub fn short_name(id: &str) -> String {
    match parse_node_id(id) {
        Ok(node) => format!("{}.{}", node.name, node.namespace),
        Err(_) => id.to_owned(),
    }
}

/// Whether `query` names the proxy with node id `id`: the whole id, `name.namespace`, or `name` alone.
pub fn names_proxy(id: &str, query: &str) -> bool {
    if id == query {
        return true;
    }
    match parse_node_id(id) {
        Ok(node) => {
            query == node.name
                || query
                    .split_once('.')
                    .is_some_and(|(name, ns)| name == node.name && ns == node.namespace)
        }
        Err(_) => false,
    }
}

/// A string in the node's metadata; absent and null are `None`.
pub fn string_field(
    meta: Option<&Struct>,
    key: &'static str,
) -> Result<Option<String>, NodeIdError> {
    match meta
        .and_then(|m| m.fields.get(key))
        .and_then(|v| v.kind.as_ref())
    {
        None | Some(ValueKind::NullValue(_)) => Ok(None),
        Some(ValueKind::StringValue(s)) => Ok(Some(s.clone())),
        Some(_) => Err(NodeIdError::BadMetadata {
            key,
            reason: "expected a string".into(),
        }),
    }
}

/// Every name a node goes by: the `<name>.<namespace>` of its id (what `proxy-status` shows) and the
/// namespace and name `mesh::Proxy::identify` serves it as (metadata wins over the id). Authorization checks
/// both pairs, so a node cannot be served as one proxy while it is recorded as another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNames {
    pub id_namespace: String,
    pub id_name: String,
    pub namespace: String,
    pub name: String,
}

impl ClaimedNames {
    pub fn of(node: &Node) -> Result<ClaimedNames, NodeIdError> {
        let id = parse_node_id(&node.id)?;
        let meta = node.metadata.as_ref();
        Ok(ClaimedNames {
            namespace: string_field(meta, keys::NAMESPACE)?
                .unwrap_or_else(|| id.namespace.to_owned()),
            name: string_field(meta, keys::WORKLOAD_NAME)?.unwrap_or_else(|| id.name.to_owned()),
            id_namespace: id.namespace.to_owned(),
            id_name: id.name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local";

    #[test]
    fn a_proxy_goes_by_its_workload_name() {
        assert_eq!(short_name(ID), "reviews-v2.default");
        assert_eq!(short_name("not-a-contract-id"), "not-a-contract-id");
        for query in [ID, "reviews-v2", "reviews-v2.default"] {
            assert!(names_proxy(ID, query), "{query}");
        }
        for query in ["reviews", "reviews-v2.other", "reviews-v3", "127.0.4.1"] {
            assert!(!names_proxy(ID, query), "{query}");
        }
    }
}
