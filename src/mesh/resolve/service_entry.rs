//! ServiceEntry → `Service`, with endpoints from `endpoints` or the WorkloadEntries its selector picks.

use crate::mesh::Code;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::vouched::Vouched;
use super::workload_index::WorkloadIndex;
use super::{meta_of, Diags};
use crate::mesh::{labels_match, Endpoint, Meta, Resolution, Service, ServicePort, Workload};
use crate::spec::{self, Kind, Location, ServiceEntry, Sourced};

/// What the last valid reading resolved, for the ServiceEntries of this one that are its very entries.
pub(super) struct Kept<'l> {
    pub entries: Vouched<ServiceEntry>,
    pub services: &'l BTreeMap<String, Arc<Service>>,
    /// The workloads added, removed or changed since (as they were and as they are); `None`: the same ones.
    pub changed_workloads: Option<&'l [(Option<&'l Workload>, Option<&'l Workload>)]>,
}

impl Kept<'_> {
    /// The services `item` resolved to in the last valid reading, if resolving it again would give them: it
    /// is the same entry, and its selector (if any) selects none of the changed workloads, before or now. That
    /// reading had no error, so each of its hosts was defined by it alone, and it had no diagnostic.
    fn services_of(&self, item: &Arc<Sourced<ServiceEntry>>) -> Option<Vec<Arc<Service>>> {
        if !self.entries.contains(item) {
            return None;
        }
        if let Some(selector) = &item.value.workload_selector {
            let namespace = item.namespace();
            let selects_a_changed_one = self
                .changed_workloads
                .unwrap_or_default()
                .iter()
                .flat_map(|(was, is)| [was, is])
                .flatten()
                .any(|w| w.namespace == namespace && labels_match(&selector.labels, &w.labels));
            if selects_a_changed_one {
                return None;
            }
        }
        item.value
            .hosts
            .iter()
            .map(|host| self.services.get(host).cloned())
            .collect()
    }
}

/// Resolves every ServiceEntry into a service per host. The index of workloads is built only if an entry
/// selects workloads again.
pub(super) fn resolve<'w>(
    items: &[Arc<Sourced<ServiceEntry>>],
    index: impl Fn() -> &'w WorkloadIndex<'w>,
    kept: Option<&Kept<'_>>,
    diags: &mut Diags<'_>,
) -> BTreeMap<String, Arc<Service>> {
    let mut out: BTreeMap<String, Arc<Service>> = BTreeMap::new();
    // VIPs become route domains; Envoy rejects a route configuration with one domain in two virtual hosts.
    let mut vips: BTreeMap<&str, Meta> = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::ServiceEntry);
        for (i, address) in item.value.addresses.iter().enumerate() {
            if let Some(first) = vips.get(address.as_str()) {
                diags.error(
                    &meta,
                    Code::DuplicateAddress,
                    format!("spec.addresses[{i}]"),
                    format!(
                        "address `{address}` is already used by {} at {}",
                        first.resource, first.origin
                    ),
                );
            } else {
                vips.insert(address, meta.clone());
            }
        }
        let services = match kept.and_then(|k| k.services_of(item)) {
            Some(services) => services,
            None => resolve_entry(item, &meta, &index, diags),
        };
        for service in services {
            if let Some(existing) = out.get(&service.hostname) {
                diags.error(
                    &meta,
                    Code::DuplicateHost,
                    "spec.hosts",
                    format!(
                        "host `{}` is already defined by {} at {}",
                        service.hostname, existing.meta.resource, existing.meta.origin
                    ),
                );
                continue;
            }
            out.insert(service.hostname.clone(), service);
        }
    }
    out
}

/// One ServiceEntry's services, one per host, with the diagnostics of the entry on its own.
fn resolve_entry<'w>(
    item: &Sourced<ServiceEntry>,
    meta: &Meta,
    index: impl Fn() -> &'w WorkloadIndex<'w>,
    diags: &mut Diags<'_>,
) -> Vec<Arc<Service>> {
    let ServiceEntry {
        hosts,
        addresses,
        ports,
        location,
        resolution,
        endpoints,
        workload_selector,
        export_to: _,
        subject_alt_names: _,
    } = &item.value;
    let mut out = Vec::new();
    if hosts.is_empty() {
        diags.error(
            meta,
            Code::MissingField,
            "spec.hosts",
            "a ServiceEntry needs at least one host",
        );
    }
    for (i, host) in hosts.iter().enumerate() {
        if host.contains('*') {
            diags.error(
                meta,
                Code::NotSupportedYet,
                format!("spec.hosts[{i}]"),
                "wildcard ServiceEntry hosts are not supported yet",
            );
        }
    }
    for (i, address) in addresses.iter().enumerate() {
        if address.parse::<IpAddr>().is_err() {
            diags.error(
                meta,
                Code::NotSupportedYet,
                format!("spec.addresses[{i}]"),
                format!("`{address}` is not an IP address (CIDR ranges are not supported yet)"),
            );
        }
    }
    let resolved_ports = resolve_ports(meta, ports, diags);
    let resolution = match resolution {
        Some(spec::Resolution::Static) => Resolution::Static,
        Some(spec::Resolution::Dns) => Resolution::Dns,
        None => {
            diags.error(meta, Code::NotSupportedYet, "spec.resolution", "resolution is required: Istio's default NONE (passthrough) is not supported yet; use STATIC or DNS");
            Resolution::Static
        }
    };
    let selected = match (endpoints.is_empty(), workload_selector) {
        (false, Some(_)) => {
            diags.error(
                meta,
                Code::EndpointsAndSelector,
                "spec.workloadSelector",
                "a ServiceEntry takes either `endpoints` or `workloadSelector`, not both",
            );
            Vec::new()
        }
        (_, Some(selector)) => {
            if *location != Some(Location::MeshInternal) {
                diags.error(
                    meta,
                    Code::RequiresField,
                    "spec.workloadSelector",
                    "workloadSelector needs `location: MESH_INTERNAL`",
                );
            }
            select_workloads(
                item.namespace(),
                &selector.labels,
                index(),
                resolution,
                diags,
            )
        }
        (_, None) => inline_endpoints(meta, endpoints, resolution, diags),
    };
    // Istio's DNS ServiceEntry without endpoints resolves each host itself (on the port's targetPort, else
    // its number, which `Endpoint::port_for` gives an endpoint without named ports).
    let host_is_endpoint =
        resolution == Resolution::Dns && endpoints.is_empty() && workload_selector.is_none();
    for (i, host) in hosts.iter().enumerate() {
        if host_is_endpoint && host.contains('*') {
            diags.error(
                meta,
                Code::WildcardDnsHost,
                format!("spec.hosts[{i}]"),
                format!("`{host}`: a wildcard host cannot be resolved by DNS; list `endpoints` or use a concrete host"),
            );
            continue;
        }
        let endpoints = if host_is_endpoint {
            vec![Endpoint {
                address: host.clone(),
                ports: Default::default(),
                labels: Default::default(),
                weight: None,
                locality: None,
                workload: None,
            }]
        } else {
            selected.clone()
        };
        out.push(Arc::new(Service {
            meta: meta.clone(),
            hostname: host.clone(),
            namespace: item.namespace().to_owned(),
            addresses: addresses.clone(),
            ports: resolved_ports.clone(),
            resolution,
            endpoints,
        }));
    }
    out
}

fn resolve_ports(
    meta: &Meta,
    ports: &[spec::ServicePort],
    diags: &mut Diags<'_>,
) -> Vec<ServicePort> {
    if ports.is_empty() {
        diags.error(
            meta,
            Code::MissingField,
            "spec.ports",
            "a ServiceEntry needs at least one port",
        );
    }
    let mut out: Vec<ServicePort> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        // Istio infers the protocol from the port name when it is not given (`http`, `http-foo`).
        let protocol = port.protocol.clone().unwrap_or_else(|| {
            if port.name == "http" || port.name.starts_with("http-") {
                "HTTP".to_owned()
            } else {
                "TCP".to_owned()
            }
        });
        if !protocol.eq_ignore_ascii_case("HTTP") {
            diags.error(
                meta,
                Code::NotSupportedYet,
                format!("spec.ports[{i}].protocol"),
                format!("protocol `{protocol}` is not supported yet (only HTTP)"),
            );
        }
        if port.number == 0 || port.number > 65535 {
            diags.error(
                meta,
                Code::OutOfRange,
                format!("spec.ports[{i}].number"),
                format!("port {} is outside 1..65535", port.number),
            );
        }
        if out.iter().any(|p| p.number == port.number) {
            diags.error(
                meta,
                Code::DuplicatePort,
                format!("spec.ports[{i}].number"),
                format!("port {} is listed twice", port.number),
            );
        }
        out.push(ServicePort {
            number: port.number,
            name: port.name.clone(),
            target_port: port.target_port,
        });
    }
    out
}

fn select_workloads(
    namespace: &str,
    selector: &BTreeMap<String, String>,
    index: &WorkloadIndex<'_>,
    resolution: Resolution,
    diags: &mut Diags<'_>,
) -> Vec<Endpoint> {
    // As in Istio, a ServiceEntry selects WorkloadEntries of its own namespace only.
    index
        .select(namespace, selector)
        .into_iter()
        .filter(|w| {
            let ok = resolution != Resolution::Static || w.address.parse::<IpAddr>().is_ok();
            if !ok {
                diags.error(&w.meta, Code::NotAnIpAddress, "spec.address", format!("`{}` is not an IP address, but it is selected by a ServiceEntry with resolution STATIC", w.address));
            }
            ok
        })
        .map(|w| Endpoint {
            address: w.address.clone(),
            ports: w.ports.clone(),
            labels: w.labels.clone(),
            weight: w.weight,
            locality: w.locality.clone(),
            workload: Some(format!("{}/{}", w.namespace, w.name)),
        })
        .collect()
}

fn inline_endpoints(
    meta: &Meta,
    endpoints: &[spec::WorkloadEntry],
    resolution: Resolution,
    diags: &mut Diags<'_>,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        let spec::WorkloadEntry {
            address,
            ports,
            labels,
            weight,
            locality,
            network: _,
            service_account: _,
        } = e;
        let Some(address) = address.clone().filter(|a| !a.is_empty()) else {
            diags.error(
                meta,
                Code::MissingField,
                format!("spec.endpoints[{i}].address"),
                "an endpoint needs an address",
            );
            continue;
        };
        if resolution == Resolution::Static && address.parse::<IpAddr>().is_err() {
            diags.error(
                meta,
                Code::NotAnIpAddress,
                format!("spec.endpoints[{i}].address"),
                format!("`{address}` is not an IP address (resolution STATIC)"),
            );
            continue;
        }
        out.push(Endpoint {
            address,
            ports: ports.clone(),
            labels: labels.clone(),
            weight: weight.filter(|w| *w > 0),
            locality: locality.clone(),
            workload: None,
        });
    }
    out
}
