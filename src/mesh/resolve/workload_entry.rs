//! WorkloadEntry → `Workload`.

use crate::mesh::Code;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{meta_of, Diags};
use crate::mesh::Workload;
use crate::spec::{Kind, Sourced, WorkloadEntry};

pub(super) fn resolve(
    items: &[Arc<Sourced<WorkloadEntry>>],
    diags: &mut Diags<'_>,
) -> BTreeMap<String, Workload> {
    let mut out = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::WorkloadEntry);
        let WorkloadEntry {
            address,
            ports,
            labels,
            weight,
            locality,
            network: _,
            service_account: _,
        } = &item.value;
        let Some(address) = address.clone().filter(|a| !a.is_empty()) else {
            diags.error(
                &meta,
                Code::MissingField,
                "spec.address",
                "a WorkloadEntry needs an address",
            );
            continue;
        };
        let key = format!("{}/{}", item.namespace(), item.name());
        out.entry(key).or_insert_with(|| Workload {
            meta,
            namespace: item.namespace().to_owned(),
            name: item.name().to_owned(),
            address,
            ports: ports.clone(),
            labels: labels.clone(),
            weight: weight.filter(|w| *w > 0),
            locality: locality.clone(),
        });
    }
    out
}
