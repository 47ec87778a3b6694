//! How a mesh's proxies sit on one machine without iptables: the identity and addresses of each sidecar
//! and gateway. `switchyard bootstrap` and `switchyard demo` both derive their Envoys from here.
//!
//! A workload's pod IP is its WorkloadEntry `address`; the sidecar's inbound listener binds it. Without
//! traffic capture, the app and the sidecar's outbound listeners need addresses of their own. On loopback
//! the convention is one /24-like block per pod: pod IP `127.X.Y.1`, app `127.X.Y.2`, outbound `127.X.Y.3`.
//! Anywhere else they must be given explicitly.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::envoy::{GatewayNode, SidecarNode};
use crate::mesh::{labels_match, Mesh};

/// Envoy's admin port in Istio's proxies.
pub const ADMIN_PORT: u16 = 15000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("no WorkloadEntry {namespace}/{name} is defined{hint}")]
    UnknownWorkload {
        namespace: String,
        name: String,
        hint: String,
    },
    #[error(
        "WorkloadEntry {namespace}/{name} has address {address:?}, which is not an IP address"
    )]
    NotAnIp {
        namespace: String,
        name: String,
        address: String,
    },
    #[error(
        "pod IP {0} does not follow the loopback layout (127.X.Y.1); give the app and outbound \
         addresses explicitly"
    )]
    NoLoopbackLayout(IpAddr),
}

/// The addresses of a pod on loopback, derived from its pod IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddresses {
    pub pod: IpAddr,
    pub app: IpAddr,
    pub outbound: IpAddr,
}

impl PodAddresses {
    pub fn loopback(pod: IpAddr) -> Result<PodAddresses, TopologyError> {
        match pod {
            IpAddr::V4(v4) if v4.is_loopback() && v4.octets()[3] == 1 => {
                let [a, b, c, _] = v4.octets();
                Ok(PodAddresses {
                    pod,
                    app: IpAddr::V4(Ipv4Addr::new(a, b, c, 2)),
                    outbound: IpAddr::V4(Ipv4Addr::new(a, b, c, 3)),
                })
            }
            _ => Err(TopologyError::NoLoopbackLayout(pod)),
        }
    }

    pub fn admin(&self) -> SocketAddr {
        SocketAddr::new(self.pod, ADMIN_PORT)
    }
}

/// The sidecar of WorkloadEntry `namespace/name`, with its addresses (given, or by the loopback layout).
pub fn sidecar(
    mesh: &Mesh,
    namespace: &str,
    name: &str,
    app_ip: Option<IpAddr>,
    outbound_ip: Option<IpAddr>,
) -> Result<(SidecarNode, PodAddresses), TopologyError> {
    let workload = mesh
        .workloads
        .get(&format!("{namespace}/{name}"))
        .ok_or_else(|| TopologyError::UnknownWorkload {
            namespace: namespace.to_string(),
            name: name.to_string(),
            hint: known_workloads_hint(mesh),
        })?;
    let pod: IpAddr = workload
        .address
        .parse()
        .map_err(|_| TopologyError::NotAnIp {
            namespace: namespace.to_string(),
            name: name.to_string(),
            address: workload.address.clone(),
        })?;
    let addresses = match (app_ip, outbound_ip) {
        (Some(app), Some(outbound)) => PodAddresses { pod, app, outbound },
        (app, outbound) => {
            let derived = PodAddresses::loopback(pod)?;
            PodAddresses {
                pod,
                app: app.unwrap_or(derived.app),
                outbound: outbound.unwrap_or(derived.outbound),
            }
        }
    };
    let node = SidecarNode {
        workload_name: workload.name.clone(),
        namespace: workload.namespace.clone(),
        labels: workload.labels.clone(),
        pod_ip: addresses.pod,
        app_ip: addresses.app,
        outbound_ip: addresses.outbound,
    };
    Ok((node, addresses))
}

fn known_workloads_hint(mesh: &Mesh) -> String {
    if mesh.workloads.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = mesh.workloads.keys().map(String::as_str).collect();
    format!(" (defined: {})", names.join(", "))
}

/// The ingress gateway deployment Istio installs: `istio-ingressgateway` in `istio-system`, labelled
/// `istio: ingressgateway`, which is what the Bookinfo Gateway selects.
pub fn ingress_gateway(ip: IpAddr) -> GatewayNode {
    GatewayNode {
        name: "istio-ingressgateway".to_string(),
        namespace: "istio-system".to_string(),
        labels: crate::mesh::default_ingress_gateway_labels(),
        ip,
    }
}

/// The Gateways in `mesh` whose selector matches these labels.
pub fn gateways_selecting<'m>(mesh: &'m Mesh, labels: &BTreeMap<String, String>) -> Vec<&'m str> {
    mesh.gateways
        .iter()
        .filter(|(_, g)| labels_match(&g.selector, labels))
        .map(|(key, _)| key.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_layout() {
        let a = PodAddresses::loopback("127.0.4.1".parse().unwrap()).unwrap();
        assert_eq!(a.app, "127.0.4.2".parse::<IpAddr>().unwrap());
        assert_eq!(a.outbound, "127.0.4.3".parse::<IpAddr>().unwrap());
        assert_eq!(a.admin(), "127.0.4.1:15000".parse().unwrap());
        assert!(PodAddresses::loopback("10.0.0.1".parse().unwrap()).is_err());
        assert!(PodAddresses::loopback("127.0.4.7".parse().unwrap()).is_err());
    }
}
