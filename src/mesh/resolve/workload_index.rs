//! WorkloadEntries by namespace and label, so that a selector finds what it selects without walking every
//! workload: resolution matches one selector per ServiceEntry, Sidecar and Gateway, and walking 10,000
//! workloads for each of 1,000 of them was most of what reading a large mesh cost.

use std::cell::{Cell, OnceCell};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::mesh::{labels_match, Labels, Workload};

pub(super) struct WorkloadIndex<'a> {
    workloads: &'a BTreeMap<String, Arc<Workload>>,
    /// Built at the first selection past [`WALKS_BEFORE_INDEXING`].
    index: OnceCell<Index<'a>>,
    /// How many selections may still walk every workload instead.
    walks_left: Cell<usize>,
}

/// A change to one workload of 10,000 selects again for the one ServiceEntry that selects it: walking them
/// all once is cheaper than indexing them. A first reading selects for every ServiceEntry, Sidecar and
/// Gateway, and indexes after these few.
const WALKS_BEFORE_INDEXING: usize = 4;

struct Index<'a> {
    /// Per namespace, its workloads in key order.
    by_namespace: BTreeMap<&'a str, Vec<&'a Workload>>,
    /// Per (namespace, label key, label value), the workloads carrying it, in key order.
    by_label: BTreeMap<(&'a str, &'a str, &'a str), Vec<&'a Workload>>,
}

impl<'a> Index<'a> {
    fn new(workloads: &'a BTreeMap<String, Arc<Workload>>) -> Index<'a> {
        let mut by_namespace: BTreeMap<&str, Vec<&Workload>> = BTreeMap::new();
        let mut by_label: BTreeMap<(&str, &str, &str), Vec<&Workload>> = BTreeMap::new();
        for workload in workloads.values() {
            let namespace = workload.namespace.as_str();
            by_namespace.entry(namespace).or_default().push(workload);
            for (key, value) in &workload.labels {
                by_label
                    .entry((namespace, key.as_str(), value.as_str()))
                    .or_default()
                    .push(workload);
            }
        }
        Index {
            by_namespace,
            by_label,
        }
    }

    fn select(&self, namespace: &str, selector: &Labels) -> Vec<&'a Workload> {
        let rarest = selector
            .iter()
            .map(|(key, value)| {
                self.by_label
                    .get(&(namespace, key.as_str(), value.as_str()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|candidates| candidates.len());
        let candidates = match rarest {
            Some(candidates) => candidates,
            None => self
                .by_namespace
                .get(namespace)
                .map_or(&[][..], Vec::as_slice),
        };
        candidates
            .iter()
            .filter(|w| labels_match(selector, &w.labels))
            .copied()
            .collect()
    }
}

impl<'a> WorkloadIndex<'a> {
    pub(super) fn new(workloads: &'a BTreeMap<String, Arc<Workload>>) -> WorkloadIndex<'a> {
        WorkloadIndex::walking_first(workloads, WALKS_BEFORE_INDEXING)
    }

    fn walking_first(
        workloads: &'a BTreeMap<String, Arc<Workload>>,
        walks: usize,
    ) -> WorkloadIndex<'a> {
        WorkloadIndex {
            workloads,
            index: OnceCell::new(),
            walks_left: Cell::new(walks),
        }
    }

    /// Every workload, in key order.
    pub(super) fn all(&self) -> impl Iterator<Item = &'a Workload> + 'a {
        self.workloads.values().map(|w| &**w)
    }

    /// The workloads of `namespace` whose labels include all of `selector`'s, in key order (the order of
    /// the map the index was built from). An empty selector selects the whole namespace.
    pub(super) fn select(&self, namespace: &str, selector: &Labels) -> Vec<&'a Workload> {
        if self.index.get().is_none() && self.walks_left.get() > 0 {
            self.walks_left.set(self.walks_left.get() - 1);
            return self
                .all()
                .filter(|w| w.namespace == namespace && labels_match(selector, &w.labels))
                .collect();
        }
        self.index
            .get_or_init(|| Index::new(self.workloads))
            .select(namespace, selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selects_what_walking_every_workload_selects_in_the_same_order() {
        let yaml: String = [
            ("default", "a", "v1"),
            ("default", "a", "v2"),
            ("default", "b", "v1"),
            ("other", "a", "v1"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (ns, app, version))| {
            format!(
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: w{i}, namespace: {ns}}}\nspec:\n  address: 127.0.{i}.1\n  labels: {{app: {app}, version: {version}}}\n"
            )
        })
        .collect();
        let config = crate::spec::load_str("workloads.yaml", &yaml).unwrap();
        let workloads = crate::mesh::resolve(&config)
            .unwrap()
            .mesh
            .workloads
            .clone();
        assert_eq!(workloads.len(), 4);
        // Indexed from the first selection, and walking for every one.
        let (index, walking) = (
            WorkloadIndex::walking_first(&workloads, 0),
            WorkloadIndex::walking_first(&workloads, usize::MAX),
        );
        let selectors = [
            labels(&[]),
            labels(&[("app", "a")]),
            labels(&[("app", "a"), ("version", "v2")]),
            labels(&[("version", "v1")]),
            labels(&[("app", "c")]),
        ];
        for namespace in ["default", "other", "none"] {
            for selector in &selectors {
                let walked: Vec<&str> = workloads
                    .values()
                    .filter(|w| w.namespace == namespace && labels_match(selector, &w.labels))
                    .map(|w| w.name.as_str())
                    .collect();
                for index in [&index, &walking] {
                    let selected: Vec<&str> = index
                        .select(namespace, selector)
                        .iter()
                        .map(|w| w.name.as_str())
                        .collect();
                    assert_eq!(selected, walked, "{namespace} {selector:?}");
                }
            }
        }
    }
}
