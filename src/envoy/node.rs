//! The node identity an Envoy presents to Switchyard, in the exact shape Switchyard's proxy
//! identification reads back (Istio's own conventions where Istio has one).

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
use serde_json::{Map, Value as Json};

// The keys are defined once, beside the code that reads them back.
use crate::mesh::node_metadata_keys as keys;

/// Proxies never intercept traffic with iptables here: apps call their sidecar's outbound address.
const INTERCEPTION_NONE: &str = "NONE";

/// `node.id`, `node.cluster` and `node.metadata` of one Envoy.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeIdentity {
    pub id: String,
    pub cluster: String,
    /// Becomes the protobuf `Struct` `node.metadata`.
    pub metadata: Map<String, Json>,
}

/// A sidecar next to one workload (a WorkloadEntry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarNode {
    /// The WorkloadEntry name.
    pub workload_name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The WorkloadEntry address; the inbound listener binds it.
    pub pod_ip: IpAddr,
    /// Where the app listens ("the pod's localhost"); the inbound cluster sends there.
    pub app_ip: IpAddr,
    /// Where the outbound listeners bind; the app sends every outgoing call there.
    pub outbound_ip: IpAddr,
}

/// An ingress gateway deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayNode {
    /// The gateway deployment name (e.g. `istio-ingressgateway`).
    pub name: String,
    pub namespace: String,
    /// The labels a Gateway's `selector` matches (e.g. `istio: ingressgateway`).
    pub labels: BTreeMap<String, String>,
    pub ip: IpAddr,
}

impl NodeIdentity {
    /// Any identity, for tests and for proxies Switchyard does not model.
    pub fn new(
        id: impl Into<String>,
        cluster: impl Into<String>,
        metadata: Map<String, Json>,
    ) -> Self {
        NodeIdentity {
            id: id.into(),
            cluster: cluster.into(),
            metadata,
        }
    }

    /// `sidecar~<pod IP>~<workload>.<ns>~<ns>.svc.cluster.local`, cluster `<app label>.<ns>`.
    pub fn sidecar(sidecar: &SidecarNode) -> Self {
        let SidecarNode {
            workload_name,
            namespace,
            labels,
            pod_ip,
            app_ip,
            outbound_ip,
        } = sidecar;
        let mut metadata = common_metadata(namespace, labels, workload_name, *pod_ip);
        metadata.insert(keys::APP_IP.into(), Json::String(app_ip.to_string()));
        metadata.insert(
            keys::OUTBOUND_IP.into(),
            Json::String(outbound_ip.to_string()),
        );
        NodeIdentity {
            id: node_id("sidecar", *pod_ip, workload_name, namespace),
            cluster: service_cluster(labels, workload_name, namespace),
            metadata,
        }
    }

    /// `router~<IP>~<gateway>.<ns>~<ns>.svc.cluster.local`, cluster `<app label>.<ns>`.
    pub fn gateway(gateway: &GatewayNode) -> Self {
        let GatewayNode {
            name,
            namespace,
            labels,
            ip,
        } = gateway;
        NodeIdentity {
            id: node_id("router", *ip, name, namespace),
            cluster: service_cluster(labels, name, namespace),
            metadata: common_metadata(namespace, labels, name, *ip),
        }
    }

    /// The node as an xDS client sends it (for in-process protocol tests that play a proxy).
    pub fn to_proto(&self) -> Node {
        Node {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            metadata: Some(json_struct(&self.metadata)),
            ..Node::default()
        }
    }
}

fn node_id(kind: &str, ip: IpAddr, name: &str, namespace: &str) -> String {
    format!("{kind}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local")
}

/// Istio's default service cluster: the `app` label (else the workload name) dot the namespace.
fn service_cluster(labels: &BTreeMap<String, String>, name: &str, namespace: &str) -> String {
    let app = labels.get("app").map(String::as_str).unwrap_or(name);
    format!("{app}.{namespace}")
}

fn common_metadata(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    workload_name: &str,
    ip: IpAddr,
) -> Map<String, Json> {
    let labels: Map<String, Json> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect();
    Map::from_iter([
        (keys::NAMESPACE.to_string(), Json::String(namespace.into())),
        (keys::LABELS.to_string(), Json::Object(labels)),
        (
            keys::WORKLOAD_NAME.to_string(),
            Json::String(workload_name.into()),
        ),
        (keys::INSTANCE_IPS.to_string(), Json::String(ip.to_string())),
        (
            keys::INTERCEPTION_MODE.to_string(),
            Json::String(INTERCEPTION_NONE.into()),
        ),
    ])
}

fn json_struct(map: &Map<String, Json>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn json_value(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        // Struct numbers are doubles by definition.
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(json_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn reviews_v2() -> SidecarNode {
        SidecarNode {
            workload_name: "reviews-v2".into(),
            namespace: "default".into(),
            labels: labels(&[("app", "reviews"), ("version", "v2")]),
            pod_ip: "127.0.4.1".parse().unwrap(),
            app_ip: "127.0.4.2".parse().unwrap(),
            outbound_ip: "127.0.4.3".parse().unwrap(),
        }
    }

    #[test]
    fn sidecar_identity_follows_the_node_contract() {
        let node = NodeIdentity::sidecar(&reviews_v2());
        assert_eq!(
            node.id,
            "sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local"
        );
        assert_eq!(node.cluster, "reviews.default");
        assert_eq!(
            Json::Object(node.metadata),
            json!({
                "NAMESPACE": "default",
                "LABELS": { "app": "reviews", "version": "v2" },
                "WORKLOAD_NAME": "reviews-v2",
                "INSTANCE_IPS": "127.0.4.1",
                "INTERCEPTION_MODE": "NONE",
                "SWITCHYARD_APP_IP": "127.0.4.2",
                "SWITCHYARD_OUTBOUND_IP": "127.0.4.3",
            })
        );
    }

    #[test]
    fn gateway_identity_follows_the_node_contract() {
        let node = NodeIdentity::gateway(&GatewayNode {
            name: "istio-ingressgateway".into(),
            namespace: "istio-system".into(),
            labels: labels(&[("app", "istio-ingressgateway"), ("istio", "ingressgateway")]),
            ip: "127.0.0.1".parse().unwrap(),
        });
        assert_eq!(
            node.id,
            "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"
        );
        assert_eq!(node.cluster, "istio-ingressgateway.istio-system");
        assert_eq!(
            Json::Object(node.metadata),
            json!({
                "NAMESPACE": "istio-system",
                "LABELS": { "app": "istio-ingressgateway", "istio": "ingressgateway" },
                "WORKLOAD_NAME": "istio-ingressgateway",
                "INSTANCE_IPS": "127.0.0.1",
                "INTERCEPTION_MODE": "NONE",
            })
        );
    }

    #[test]
    fn cluster_falls_back_to_the_workload_name_without_an_app_label() {
        let mut sidecar = reviews_v2();
        sidecar.labels.clear();
        assert_eq!(
            NodeIdentity::sidecar(&sidecar).cluster,
            "reviews-v2.default"
        );
    }

    #[test]
    fn proto_node_carries_metadata_as_a_struct() {
        let node = NodeIdentity::sidecar(&reviews_v2()).to_proto();
        assert_eq!(node.cluster, "reviews.default");
        let metadata = node.metadata.unwrap();
        let labels = match &metadata.fields["LABELS"].kind {
            Some(Kind::StructValue(s)) => s,
            other => panic!("LABELS is {other:?}"),
        };
        assert_eq!(
            labels.fields["version"].kind,
            Some(Kind::StringValue("v2".into()))
        );
        assert_eq!(
            metadata.fields["INSTANCE_IPS"].kind,
            Some(Kind::StringValue("127.0.4.1".into()))
        );
    }
}
