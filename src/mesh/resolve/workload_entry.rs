//! WorkloadEntry → `Workload`.

use crate::mesh::Code;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{meta_of, Diags};
use crate::mesh::{changed_keys, Workload};
use crate::spec::{Kind, Sourced, WorkloadEntry};

/// Resolves every WorkloadEntry. One that `kept` vouches for (the very entry of the last valid reading)
/// keeps the workload it resolved to then: at 10,000 workloads, a removed one resolves nothing else again.
pub(super) fn resolve(
    items: &[Arc<Sourced<WorkloadEntry>>],
    kept: impl Fn(&Arc<Sourced<WorkloadEntry>>, &str) -> Option<Arc<Workload>>,
    diags: &mut Diags<'_>,
) -> BTreeMap<String, Arc<Workload>> {
    let mut out = BTreeMap::new();
    for item in items {
        let key = format!("{}/{}", item.namespace(), item.name());
        if let Some(workload) = kept(item, &key) {
            out.entry(key).or_insert(workload);
            continue;
        }
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
        out.entry(key).or_insert_with(|| {
            Arc::new(Workload {
                meta,
                namespace: item.namespace().to_owned(),
                name: item.name().to_owned(),
                address,
                ports: ports.clone(),
                labels: labels.clone(),
                weight: weight.filter(|w| *w > 0),
                locality: locality.clone(),
            })
        });
    }
    out
}

/// The workloads added, removed or changed between two resolutions, each as it was and as it is (`None`: not
/// there): what a label selector may select differently.
pub(super) fn changed<'m>(
    before: &'m BTreeMap<String, Arc<Workload>>,
    now: &'m BTreeMap<String, Arc<Workload>>,
) -> Vec<(Option<&'m Workload>, Option<&'m Workload>)> {
    changed_keys(before, now)
        .into_iter()
        .map(|key| (before.get(key).map(|w| &**w), now.get(key).map(|w| &**w)))
        .collect()
}
