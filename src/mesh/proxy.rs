//! Who an Envoy is: its node (id, metadata) mapped to a WorkloadEntry (sidecar) or to Gateways (router).
//! The contract is documented in `docs/proxy-identity.md`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind as ValueKind, Struct};
use serde::Serialize;

use super::{labels_match, Labels, Mesh};
use crate::node_id::{keys, parse_node_id, string_field, ClaimedNames, NodeIdError};

pub use crate::node_id::keys as node_metadata_keys;

/// Everything translation needs to know about one proxy. Two nodes with equal `Proxy` values get identical
/// resources, so the xDS server can cache translations per `Proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Proxy {
    Sidecar(Sidecar),
    Router(Router),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Sidecar {
    pub namespace: String,
    /// The WorkloadEntry's name.
    pub workload: String,
    /// The WorkloadEntry's labels: what `sourceLabels` are matched against.
    pub labels: Labels,
    /// Pod IP: inbound listeners bind here.
    pub ip: String,
    /// Where the inbound cluster sends (the app's "localhost").
    pub app_ip: String,
    /// Where outbound listeners bind (in place of iptables capture).
    pub outbound_ip: String,
    /// The Sidecar resource (`namespace/name`) that limits which services this sidecar reaches, if any.
    pub egress: Option<String>,
}

/// What a sidecar's outbound route configurations depend on besides the mesh. Sidecars with equal scopes get
/// identical route configurations, so they are translated once per scope, not once per proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RouteScope {
    /// `sourceNamespace` matches and the short host names only a proxy in the service's namespace may use.
    pub namespace: String,
    /// The proxy's labels, restricted to the keys some `sourceLabels` mentions: the rest cannot change a
    /// route, and leaving them out is what lets a thousand workloads share one scope.
    pub labels: Labels,
    /// The Sidecar resource that limits which services are routed, if any.
    pub egress: Option<String>,
}

impl RouteScope {
    /// The scope of a sidecar in `namespace` with `labels`; `keys` is [`Mesh::source_label_keys`].
    pub fn new(
        namespace: &str,
        labels: &Labels,
        keys: &BTreeSet<String>,
        egress: Option<&str>,
    ) -> RouteScope {
        RouteScope {
            egress: egress.map(str::to_owned),
            namespace: namespace.to_owned(),
            labels: labels
                .iter()
                .filter(|(k, _)| keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl Mesh {
    /// Every label key some VirtualService route matches with `sourceLabels`.
    pub fn source_label_keys(&self) -> BTreeSet<String> {
        self.virtual_services
            .iter()
            .flat_map(|vs| &vs.http)
            .flat_map(|http| &http.matches)
            .flat_map(|m| m.source_labels.keys().cloned())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Router {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Gateway listeners bind here.
    pub ip: String,
    /// `namespace/name` of every Gateway whose selector matches `labels`, sorted.
    pub gateways: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("node id `{0}` is not of the form `<sidecar|router>~<ip>~<name>.<namespace>~<namespace>.svc.cluster.local`")]
    BadNodeId(String),
    #[error("node type `{0}` is not supported (expected `sidecar` or `router`)")]
    UnknownNodeType(String),
    #[error("node metadata `{key}` is invalid: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    #[error("no WorkloadEntry {namespace}/{name} is defined for this sidecar")]
    UnknownWorkload { namespace: String, name: String },
}

impl From<NodeIdError> for IdentityError {
    fn from(e: NodeIdError) -> IdentityError {
        match e {
            NodeIdError::BadNodeId(id) => IdentityError::BadNodeId(id),
            NodeIdError::BadMetadata { key, reason } => IdentityError::BadMetadata { key, reason },
        }
    }
}

fn labels_field(meta: Option<&Struct>) -> Result<Labels, IdentityError> {
    let key = keys::LABELS;
    match meta
        .and_then(|m| m.fields.get(key))
        .and_then(|v| v.kind.as_ref())
    {
        None | Some(ValueKind::NullValue(_)) => Ok(Labels::new()),
        Some(ValueKind::StructValue(s)) => s
            .fields
            .iter()
            .map(|(k, v)| match &v.kind {
                Some(ValueKind::StringValue(s)) => Ok((k.clone(), s.clone())),
                _ => Err(IdentityError::BadMetadata {
                    key,
                    reason: format!("label `{k}` is not a string"),
                }),
            })
            .collect(),
        Some(_) => Err(IdentityError::BadMetadata {
            key,
            reason: "expected a struct of strings".into(),
        }),
    }
}

fn ip(key: &'static str, value: &str) -> Result<String, IdentityError> {
    value
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| IdentityError::BadMetadata {
            key,
            reason: format!("`{value}` is not an IP address"),
        })
}

impl Sidecar {
    /// Its WorkloadEntry's key in [`crate::mesh::Mesh::workloads`]: `namespace/name`.
    pub fn workload_key(&self) -> String {
        format!("{}/{}", self.namespace, self.workload)
    }
}

impl Proxy {
    /// Maps an Envoy node to the proxy it is. Metadata wins over the node id's fields; the id is the fallback.
    pub fn identify(mesh: &Mesh, node: &Node) -> Result<Proxy, IdentityError> {
        Proxy::identify_with(mesh, node, |namespace, _, labels| {
            mesh.egress_scope_for(namespace, labels).map(str::to_owned)
        })
    }

    /// [`Proxy::identify`], asking `egress_of(namespace, workload, labels)` which `Sidecar` resource applies to a
    /// sidecar ([`Mesh::egress_scope_for`]'s answer): a caller that already knows it for every workload saves
    /// every stream a walk over every `Sidecar` on every change.
    pub fn identify_with(
        mesh: &Mesh,
        node: &Node,
        egress_of: impl FnOnce(&str, &str, &crate::mesh::Labels) -> Option<String>,
    ) -> Result<Proxy, IdentityError> {
        let id = parse_node_id(&node.id)?;
        let meta = node.metadata.as_ref();
        let ClaimedNames {
            namespace, name, ..
        } = ClaimedNames::of(node)?;
        let instance_ip = match string_field(meta, keys::INSTANCE_IPS)? {
            Some(list) => {
                let first = list
                    .split(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .unwrap_or(id.ip);
                ip(keys::INSTANCE_IPS, first)?
            }
            None => ip(keys::INSTANCE_IPS, id.ip)?,
        };
        if let Some(mode) = string_field(meta, keys::INTERCEPTION_MODE)? {
            if mode != "NONE" {
                return Err(IdentityError::BadMetadata {
                    key: keys::INTERCEPTION_MODE,
                    reason: format!("`{mode}`: only NONE is supported (listeners bind real addresses, no iptables)"),
                });
            }
        }
        match id.kind {
            "sidecar" => {
                let workload = mesh
                    .workloads
                    .get(&format!("{namespace}/{name}"))
                    .ok_or_else(|| IdentityError::UnknownWorkload {
                        namespace: namespace.clone(),
                        name: name.clone(),
                    })?;
                // Without iptables the app and the outbound listeners need addresses of their own; loopback is
                // the natural default for a single sidecar on a host.
                let app_ip = match string_field(meta, keys::APP_IP)? {
                    Some(v) => ip(keys::APP_IP, &v)?,
                    None => "127.0.0.1".to_owned(),
                };
                let outbound_ip = match string_field(meta, keys::OUTBOUND_IP)? {
                    Some(v) => ip(keys::OUTBOUND_IP, &v)?,
                    None => "127.0.0.1".to_owned(),
                };
                let egress = egress_of(&namespace, &name, &workload.labels);
                Ok(Proxy::Sidecar(Sidecar {
                    egress,
                    namespace,
                    workload: name,
                    labels: workload.labels.clone(),
                    ip: instance_ip,
                    app_ip,
                    outbound_ip,
                }))
            }
            "router" => {
                let labels = labels_field(meta)?;
                let gateways = mesh
                    .gateways
                    .iter()
                    .filter(|(_, g)| labels_match(&g.selector, &labels))
                    .map(|(k, _)| k.clone())
                    .collect();
                Ok(Proxy::Router(Router {
                    namespace,
                    name,
                    labels,
                    ip: instance_ip,
                    gateways,
                }))
            }
            other => Err(IdentityError::UnknownNodeType(other.to_owned())),
        }
    }

    pub fn namespace(&self) -> &str {
        match self {
            Proxy::Sidecar(s) => &s.namespace,
            Proxy::Router(r) => &r.namespace,
        }
    }
}
