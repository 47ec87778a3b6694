//! WorkloadEntry → `Workload`.

use crate::mesh::Code;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::vouched::Vouched;
use super::{meta_of, Diags};
use crate::mesh::{changed_keys, Workload};
use crate::spec::{Kind, Sourced, WorkloadEntry};

/// The last valid reading's WorkloadEntries and the workloads they resolved to.
pub(super) struct Before<'a> {
    pub entries: &'a [Arc<Sourced<WorkloadEntry>>],
    pub workloads: &'a BTreeMap<String, Arc<Workload>>,
}

/// Resolves every WorkloadEntry, keyed `namespace/name`; of two entries with one key, the first (an error
/// reported by `check_names`). An entry of `before` (the very entry of the last valid reading, which had
/// no diagnostic for it) keeps the workload it resolved to then.
pub(super) fn resolve(
    items: &[Arc<Sourced<WorkloadEntry>>],
    before: Option<Before<'_>>,
    diags: &mut Diags<'_>,
) -> BTreeMap<String, Arc<Workload>> {
    let Some(before) = before else {
        return resolve_all(items, |_, _| None, diags);
    };
    let was = Vouched::of(before.entries);
    if let Some(workloads) = follow(items, &before, &was, diags) {
        return workloads;
    }
    resolve_all(
        items,
        |item, key| {
            was.contains(item)
                .then(|| before.workloads.get(key).cloned())?
        },
        diags,
    )
}

/// The last reading's workloads, less those of its entries that are gone, plus those of the entries that are
/// new (an entry of a valid reading owns its key: no name or namespace holds a `/`, `check_name`). At 10,000
/// workloads a removed one costs a copy of the map, not 10,000 keys formatted, looked up and inserted again
/// (and never more than that: copying the map is cheaper than building it). `None` (resolve them all) when a
/// new entry is named as a kept one, whose order against it only a walk through every entry tells (the same
/// for two new entries named alike: a reading with a duplicate is in error, however slow).
fn follow(
    items: &[Arc<Sourced<WorkloadEntry>>],
    before: &Before<'_>,
    was: &Vouched<WorkloadEntry>,
    diags: &mut Diags<'_>,
) -> Option<BTreeMap<String, Arc<Workload>>> {
    let new: Vec<&Arc<Sourced<WorkloadEntry>>> =
        items.iter().filter(|item| !was.contains(item)).collect();
    let is = Vouched::of(items);
    let gone = before.entries.iter().filter(|entry| !is.contains(entry));
    let mut workloads = before.workloads.clone();
    for entry in gone {
        workloads.remove(&key_of(entry));
    }
    // Every name first: nothing is resolved (and reported) before it is known that nothing will be again.
    let mut keys = BTreeSet::new();
    let mut new_keyed = Vec::with_capacity(new.len());
    for item in new {
        let key = key_of(item);
        if workloads.contains_key(&key) || !keys.insert(key.clone()) {
            return None;
        }
        new_keyed.push((key, item));
    }
    for (key, item) in new_keyed {
        if let Some(workload) = workload_of(item, diags) {
            workloads.insert(key, workload);
        }
    }
    Some(workloads)
}

/// Resolves every entry in turn; `kept` gives an entry's workload without resolving it again.
fn resolve_all(
    items: &[Arc<Sourced<WorkloadEntry>>],
    kept: impl Fn(&Arc<Sourced<WorkloadEntry>>, &str) -> Option<Arc<Workload>>,
    diags: &mut Diags<'_>,
) -> BTreeMap<String, Arc<Workload>> {
    let mut out = BTreeMap::new();
    for item in items {
        let key = key_of(item);
        if let Some(workload) = kept(item, &key) {
            out.entry(key).or_insert(workload);
            continue;
        }
        if let Some(workload) = workload_of(item, diags) {
            out.entry(key).or_insert(workload);
        }
    }
    out
}

fn key_of(item: &Sourced<WorkloadEntry>) -> String {
    format!("{}/{}", item.namespace(), item.name())
}

/// The workload of one entry, or `None` with a diagnostic.
fn workload_of(item: &Sourced<WorkloadEntry>, diags: &mut Diags<'_>) -> Option<Arc<Workload>> {
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
        return None;
    };
    Some(Arc::new(Workload {
        meta,
        namespace: item.namespace().to_owned(),
        name: item.name().to_owned(),
        address,
        ports: ports.clone(),
        labels: labels.clone(),
        weight: weight.filter(|w| *w > 0),
        locality: locality.clone(),
    }))
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
