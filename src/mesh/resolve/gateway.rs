//! Gateway → `Gateway` (plain HTTP servers).

use crate::mesh::Code;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::workload_index::WorkloadIndex;
use super::{meta_of, Diags};
use crate::mesh::{labels_match, Gateway, GatewayServer, Workload};
use crate::spec::{self, Kind, Sourced};

pub(super) fn resolve(
    items: &[Arc<Sourced<spec::Gateway>>],
    index: &WorkloadIndex<'_>,
    service_entries: &[Arc<Sourced<spec::ServiceEntry>>],
    diags: &mut Diags<'_>,
) -> BTreeMap<String, Gateway> {
    let default_ingress = crate::mesh::default_ingress_gateway_labels();
    // A WorkloadEntry that a ServiceEntry selects is an application's pod with a sidecar, not a gateway; counting
    // its labels would let a selector that only matches an app hide the warning.
    let app_workloads: BTreeSet<(&str, &str)> = service_entries
        .iter()
        .filter_map(|se| Some((se.namespace(), &se.value.workload_selector.as_ref()?.labels)))
        .flat_map(|(namespace, selector)| index.select(namespace, selector))
        .map(|w| (w.namespace.as_str(), w.name.as_str()))
        .collect();
    let gateway_candidates: Vec<&Workload> = index
        .all()
        .filter(|w| !app_workloads.contains(&(w.namespace.as_str(), w.name.as_str())))
        .collect();
    let mut out = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::Gateway);
        let spec::Gateway { selector, servers } = &item.value;
        if !labels_match(selector, &default_ingress)
            && !gateway_candidates
                .iter()
                .any(|w| labels_match(selector, &w.labels))
        {
            diags.warn(
                &meta,
                Code::GatewaySelectsNothing,
                "spec.selector",
                "the selector matches neither Istio's default ingress gateway (istio: ingressgateway) nor a WorkloadEntry outside every ServiceEntry's workloadSelector (a selected one is an application workload, not a gateway); no proxy is known to serve this Gateway (a gateway proxy is matched by the LABELS in its node metadata)",
            );
        }
        let mut resolved = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            let field = format!("spec.servers[{i}]");
            let spec::Server {
                port,
                hosts,
                name: _,
                bind: _,
                tls: _,
                default_endpoint: _,
            } = server;
            if !port.protocol.eq_ignore_ascii_case("HTTP") {
                diags.error(
                    &meta,
                    Code::NotSupportedYet,
                    format!("{field}.port.protocol"),
                    format!(
                        "protocol `{}` is not supported yet (only HTTP)",
                        port.protocol
                    ),
                );
            }
            if port.number == 0 || port.number > 65535 {
                diags.error(
                    &meta,
                    Code::OutOfRange,
                    format!("{field}.port.number"),
                    format!("port {} is outside 1..65535", port.number),
                );
            }
            if hosts.is_empty() {
                diags.error(
                    &meta,
                    Code::MissingField,
                    format!("{field}.hosts"),
                    "a server needs at least one host",
                );
            }
            resolved.push(GatewayServer {
                port: port.number,
                port_name: port.name.clone(),
                // `namespace/host` restricts which namespaces' VirtualServices may bind; Switchyard does not
                // scope binding by namespace yet, so only `*/` and `./` are accepted.
                hosts: hosts
                    .iter()
                    .enumerate()
                    .filter_map(|(j, h)| match h.split_once('/') {
                        None => Some(h.clone()),
                        Some(("*" | ".", host)) => Some(host.to_owned()),
                        Some(_) => {
                            diags.error(&meta, Code::NotSupportedYet, format!("{field}.hosts[{j}]"), format!("`{h}`: namespace-scoped server hosts are not supported yet (use `*/host` or `host`)"));
                            None
                        }
                    })
                    .collect(),
            });
        }
        // Kept even when invalid, so that VirtualServices naming it do not also report it missing.
        out.entry(format!("{}/{}", item.namespace(), item.name()))
            .or_insert(Gateway {
                meta,
                selector: selector.clone(),
                servers: resolved,
            });
    }
    out
}
