//! Binds an xDS stream to the workload identity in its client certificate.
//!
//! With mutual TLS, every proxy presents an X.509 certificate whose one URI SAN is a SPIFFE ID,
//! `spiffe://<trust domain>/ns/<namespace>/sa/<name>`. The node a stream claims (its id and, where present,
//! its `NAMESPACE` / `WORKLOAD_NAME` metadata) must name that same namespace and name; anything else is
//! refused with `PERMISSION_DENIED` before the stream is registered or served, so a proxy gets only its own
//! configuration and can report ACKs and NACKs only for itself. `docs/security.md` has the mapping.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use rustls_pki_types::CertificateDer;
use tonic::Status;

use super::refusal::{Refusal, TlsCounters};
use crate::node_id::ClaimedNames;

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload identity: `spiffe://<trust domain>/ns/<namespace>/sa/<name>`, Istio's format. Switchyard's
/// `<name>` is the proxy's own name (the WorkloadEntry of a sidecar, the deployment of a gateway), not a
/// service account shared by several workloads, so each proxy has an identity of its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a SPIFFE ID of the form spiffe://<trust domain>/ns/<namespace>/sa/<name>")]
pub struct BadSpiffeId(pub String);

impl SpiffeId {
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.name
        )
    }
}

impl FromStr for SpiffeId {
    type Err = BadSpiffeId;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let bad = || BadSpiffeId(uri.to_string());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(bad)?;
        let segments: Vec<&str> = rest.split('/').collect();
        let [trust_domain, "ns", namespace, "sa", name] = segments.as_slice() else {
            return Err(bad());
        };
        if [trust_domain, namespace, name].iter().any(|s| s.is_empty()) {
            return Err(bad());
        }
        Ok(SpiffeId::new(*trust_domain, *namespace, *name))
    }
}

/// Why a certificate or a node was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("mutual TLS is required and the connection presented no client certificate")]
    NoCertificate,
    #[error("the client certificate cannot be read: {0}")]
    UnreadableCertificate(String),
    #[error("the client certificate carries no SPIFFE ID (a URI SAN spiffe://<trust domain>/ns/<namespace>/sa/<name>)")]
    NoSpiffeId,
    #[error(
        "the client certificate carries {0} SPIFFE IDs; a workload certificate has exactly one"
    )]
    SeveralSpiffeIds(usize),
    #[error(transparent)]
    BadSpiffeId(#[from] BadSpiffeId),
    #[error("the client certificate's identity {peer} is not in the trust domain {expected}")]
    ForeignTrustDomain { peer: SpiffeId, expected: String },
    #[error("the node is unreadable: {0}")]
    BadNode(String),
    #[error(
        "the client certificate identifies {peer}, which may not act as node `{node_id}` (it claims {claimed})"
    )]
    Mismatch {
        peer: SpiffeId,
        node_id: String,
        claimed: String,
    },
}

impl Denied {
    fn refusal(&self) -> Refusal {
        match self {
            Denied::Mismatch { .. } => Refusal::IdentityMismatch,
            Denied::NoCertificate => Refusal::NoClientCertificate,
            _ => Refusal::NoSpiffeId,
        }
    }

    pub fn into_status(self) -> Status {
        Status::permission_denied(self.to_string())
    }
}

/// What the server requires of a stream's peer.
#[derive(Debug, Clone, Default)]
pub enum IdentityPolicy {
    /// No client authentication (plaintext, or TLS without a client CA): any node is served.
    #[default]
    Open,
    /// Mutual TLS: the node must match the client certificate's SPIFFE ID in this trust domain.
    Spiffe {
        trust_domain: String,
        counters: Arc<TlsCounters>,
    },
}

impl IdentityPolicy {
    /// What this stream's peer is, from the certificates the TLS layer verified
    /// (`tonic::Request::peer_certs`).
    pub fn peer(&self, certs: Option<&[CertificateDer<'_>]>) -> Peer {
        match self {
            IdentityPolicy::Open => Peer::Open,
            IdentityPolicy::Spiffe {
                trust_domain,
                counters,
            } => Peer::Checked {
                identity: peer_identity(certs, trust_domain),
                counters: counters.clone(),
            },
        }
    }
}

/// One stream's peer, known from its TLS connection before the first request.
#[derive(Debug, Clone)]
pub enum Peer {
    Open,
    Checked {
        identity: Result<SpiffeId, Denied>,
        counters: Arc<TlsCounters>,
    },
}

impl Peer {
    /// Whether this peer may act as `node`. A refusal is counted here, once per stream; the stream task
    /// logs the status it ends the stream with.
    pub fn authorize(&self, node: &Node) -> Result<(), Status> {
        let Peer::Checked { identity, counters } = self else {
            return Ok(());
        };
        let decision = identity.clone().and_then(|peer| authorize(&peer, node));
        decision.map_err(|denied| {
            counters.refused(denied.refusal());
            denied.into_status()
        })
    }
}

/// The SPIFFE ID of the leaf certificate, which must lie in `trust_domain`.
pub fn peer_identity(
    certs: Option<&[CertificateDer<'_>]>,
    trust_domain: &str,
) -> Result<SpiffeId, Denied> {
    let leaf = certs.and_then(|c| c.first()).ok_or(Denied::NoCertificate)?;
    let peer = spiffe_id(leaf)?;
    if peer.trust_domain != trust_domain {
        return Err(Denied::ForeignTrustDomain {
            peer,
            expected: trust_domain.to_string(),
        });
    }
    Ok(peer)
}

/// The one SPIFFE URI SAN of a certificate.
pub fn spiffe_id(cert: &CertificateDer<'_>) -> Result<SpiffeId, Denied> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| Denied::UnreadableCertificate(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| Denied::UnreadableCertificate(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                Some(*uri)
            }
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(Denied::NoSpiffeId),
        [uri] => Ok(uri.parse()?),
        several => Err(Denied::SeveralSpiffeIds(several.len())),
    }
}

/// The node must name the certificate's namespace and name everywhere it names itself: in its id (what the
/// registry and `proxy-status` show) and in the metadata `Proxy::identify` prefers (what it is served).
pub fn authorize(peer: &SpiffeId, node: &Node) -> Result<(), Denied> {
    let claimed = ClaimedNames::of(node).map_err(|e| Denied::BadNode(e.to_string()))?;
    let pairs = [
        (&claimed.id_namespace, &claimed.id_name),
        (&claimed.namespace, &claimed.name),
    ];
    if pairs
        .iter()
        .all(|(ns, name)| **ns == peer.namespace && **name == peer.name)
    {
        return Ok(());
    }
    let mut names: Vec<String> = pairs
        .iter()
        .map(|(ns, name)| format!("{name}.{ns}"))
        .collect();
    names.dedup();
    Err(Denied::Mismatch {
        peer: peer.clone(),
        node_id: node.id.clone(),
        claimed: names.join(" and "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};

    fn node(id: &str, meta: &[(&str, &str)]) -> Node {
        let fields = meta
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(Kind::StringValue(v.to_string())),
                    },
                )
            })
            .collect();
        Node {
            id: id.to_string(),
            metadata: Some(Struct { fields }),
            ..Default::default()
        }
    }

    const PRODUCTPAGE: &str = "sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local";

    #[test]
    fn spiffe_ids_parse_strictly_and_print_back() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/reviews-v2"
            .parse()
            .unwrap();
        assert_eq!(id, SpiffeId::new("cluster.local", "default", "reviews-v2"));
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/default/sa/reviews-v2"
        );
        for bad in [
            "https://cluster.local/ns/default/sa/x",
            "spiffe://cluster.local/ns/default",
            "spiffe://cluster.local/ns//sa/x",
            "spiffe://cluster.local/sa/x/ns/default",
            "spiffe://cluster.local/ns/default/sa/x/extra",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_node_matching_its_certificate_is_authorized() {
        let peer = SpiffeId::new("cluster.local", "default", "productpage-v1");
        let with_meta = node(
            PRODUCTPAGE,
            &[
                ("NAMESPACE", "default"),
                ("WORKLOAD_NAME", "productpage-v1"),
            ],
        );
        assert_eq!(authorize(&peer, &with_meta), Ok(()));
        assert_eq!(authorize(&peer, &node(PRODUCTPAGE, &[])), Ok(()));
        let gateway = SpiffeId::new("cluster.local", "istio-system", "istio-ingressgateway");
        let router = node(
            "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local",
            &[],
        );
        assert_eq!(authorize(&gateway, &router), Ok(()));
    }

    #[test]
    fn another_workloads_node_id_or_metadata_is_refused() {
        let reviews = SpiffeId::new("cluster.local", "default", "reviews-v1");
        let Err(Denied::Mismatch { claimed, .. }) = authorize(&reviews, &node(PRODUCTPAGE, &[]))
        else {
            panic!("productpage-v1's node id accepted for reviews-v1");
        };
        assert_eq!(claimed, "productpage-v1.default");
        // Served as reviews-v1 but recorded as productpage-v1: its NACKs would show under the wrong proxy.
        let mixed = node(PRODUCTPAGE, &[("WORKLOAD_NAME", "reviews-v1")]);
        assert!(matches!(
            authorize(&reviews, &mixed),
            Err(Denied::Mismatch { .. })
        ));
        // The other way round: recorded as reviews-v1, served as productpage-v1.
        let reviews_id = "sidecar~127.0.3.1~reviews-v1.default~default.svc.cluster.local";
        let mixed = node(reviews_id, &[("WORKLOAD_NAME", "productpage-v1")]);
        assert!(matches!(
            authorize(&reviews, &mixed),
            Err(Denied::Mismatch { .. })
        ));
        let other_ns = node(reviews_id, &[("NAMESPACE", "shop")]);
        assert!(matches!(
            authorize(&reviews, &other_ns),
            Err(Denied::Mismatch { .. })
        ));
        assert!(matches!(
            authorize(&reviews, &node("reviews-v1", &[])),
            Err(Denied::BadNode(_))
        ));
    }

    #[test]
    fn an_open_policy_authorizes_anyone_and_a_missing_certificate_nobody() {
        let anyone = node(PRODUCTPAGE, &[]);
        assert!(IdentityPolicy::Open.peer(None).authorize(&anyone).is_ok());
        let counters = Arc::new(TlsCounters::default());
        let policy = IdentityPolicy::Spiffe {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            counters: counters.clone(),
        };
        let status = policy.peer(None).authorize(&anyone).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(counters.get(Refusal::NoClientCertificate), 1);
    }
}
