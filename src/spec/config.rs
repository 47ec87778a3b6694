//! The loaded configuration: every resource wrapped with where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::{DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry};

/// Where a resource was read from. `line` is 1-based and points at the document's first line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub doc_index: usize,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The kinds Switchyard understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    WorkloadEntry,
    Sidecar,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Gateway => "Gateway",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::Sidecar => "Sidecar",
        }
    }

    pub fn parse(kind: &str) -> Option<Kind> {
        [
            Kind::VirtualService,
            Kind::DestinationRule,
            Kind::Gateway,
            Kind::ServiceEntry,
            Kind::WorkloadEntry,
            Kind::Sidecar,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }

    /// The lower-case, dash-separated name Istio uses in config paths (`virtual-service`).
    pub fn istio_path_segment(self) -> &'static str {
        match self {
            Kind::VirtualService => "virtual-service",
            Kind::DestinationRule => "destination-rule",
            Kind::Gateway => "gateway",
            Kind::ServiceEntry => "service-entry",
            Kind::WorkloadEntry => "workload-entry",
            Kind::Sidecar => "sidecar",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// kind/namespace/name: the identity of a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Kubernetes object metadata. Only `name`, `namespace`, `labels` and `annotations` mean anything here; the other
/// standard fields are accepted so that `kubectl get -o yaml` output loads, and ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, rename = "uid")]
    _uid: Option<IgnoredAny>,
    #[serde(default, rename = "resourceVersion")]
    _resource_version: Option<IgnoredAny>,
    #[serde(default, rename = "generation")]
    _generation: Option<IgnoredAny>,
    #[serde(default, rename = "creationTimestamp")]
    _creation_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "deletionTimestamp")]
    _deletion_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "deletionGracePeriodSeconds")]
    _deletion_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "generateName")]
    _generate_name: Option<IgnoredAny>,
    #[serde(default, rename = "finalizers")]
    _finalizers: Option<IgnoredAny>,
    #[serde(default, rename = "ownerReferences")]
    _owner_references: Option<IgnoredAny>,
    #[serde(default, rename = "managedFields")]
    _managed_fields: Option<IgnoredAny>,
    #[serde(default, rename = "selfLink")]
    _self_link: Option<IgnoredAny>,
}

impl ObjectMeta {
    /// Istio's samples omit the namespace; like `kubectl apply` without `-n`, that means `default`.
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

pub const DEFAULT_NAMESPACE: &str = "default";

/// One resource with its metadata and provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub origin: Origin,
    pub metadata: ObjectMeta,
    pub value: T,
    /// The document's text, so that later stages can point diagnostics at the exact line of a field.
    pub source: super::Source,
}

impl<T> Sourced<T> {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace()
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn key(&self, kind: Kind) -> ResourceKey {
        ResourceKey {
            kind,
            namespace: self.namespace().to_owned(),
            name: self.metadata.name.clone(),
        }
    }
}

/// Everything loaded from a set of spec files, in load order (files sorted, documents in file order). Each
/// resource is shared: a reading of a directory where one file changed reuses every other file's resources as
/// they were parsed, without copying them, and a later stage tells an unchanged resource by its address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub virtual_services: Vec<Arc<Sourced<VirtualService>>>,
    pub destination_rules: Vec<Arc<Sourced<DestinationRule>>>,
    pub gateways: Vec<Arc<Sourced<Gateway>>>,
    pub service_entries: Vec<Arc<Sourced<ServiceEntry>>>,
    pub workload_entries: Vec<Arc<Sourced<WorkloadEntry>>>,
    pub sidecars: Vec<Arc<Sourced<Sidecar>>>,
    /// Paths that were not read (FIFOs, devices, sockets, a directory reached twice), as warnings naming each.
    pub skipped: Vec<super::LoadError>,
}

impl Config {
    /// Appends `other`'s resources after this one's, as loading its files after this one's would. A reading
    /// keeps each file's part and appends it to every later reading, sharing each resource (`Arc`).
    pub fn extend_from(&mut self, other: &Config) {
        let Config {
            virtual_services,
            destination_rules,
            gateways,
            service_entries,
            workload_entries,
            sidecars,
            skipped,
        } = other;
        self.virtual_services.extend_from_slice(virtual_services);
        self.destination_rules.extend_from_slice(destination_rules);
        self.gateways.extend_from_slice(gateways);
        self.service_entries.extend_from_slice(service_entries);
        self.workload_entries.extend_from_slice(workload_entries);
        self.sidecars.extend_from_slice(sidecars);
        self.skipped.extend_from_slice(skipped);
    }

    /// Takes from `before`, an earlier reading of the same file, each resource whose document reads the same
    /// at the same place (index, line and text): it parses to the same resource, and sharing it tells later
    /// stages that it did not change. One edited document of a file then leaves the others as they were.
    pub fn keep_unchanged_from(&mut self, before: &Config) {
        fn keep<T>(now: &mut [Arc<Sourced<T>>], before: &[Arc<Sourced<T>>]) {
            if before.is_empty() {
                return;
            }
            let by_index: BTreeMap<usize, &Arc<Sourced<T>>> = before
                .iter()
                .map(|item| (item.origin.doc_index, item))
                .collect();
            for item in now.iter_mut() {
                let Some(was) = by_index.get(&item.origin.doc_index) else {
                    continue;
                };
                if was.origin == item.origin
                    && was.source.first_line == item.source.first_line
                    && was.source.text == item.source.text
                {
                    *item = Arc::clone(was);
                }
            }
        }
        keep(&mut self.virtual_services, &before.virtual_services);
        keep(&mut self.destination_rules, &before.destination_rules);
        keep(&mut self.gateways, &before.gateways);
        keep(&mut self.service_entries, &before.service_entries);
        keep(&mut self.workload_entries, &before.workload_entries);
        keep(&mut self.sidecars, &before.sidecars);
    }

    /// Adds `other` on top of `self` the way `kubectl apply` would: a resource with the same kind/namespace/name
    /// replaces the existing one (keeping its position), new ones are appended.
    pub fn overlay(mut self, other: Config) -> Config {
        fn merge<T>(base: &mut Vec<Arc<Sourced<T>>>, top: Vec<Arc<Sourced<T>>>, kind: Kind) {
            for item in top {
                let key = item.key(kind);
                match base.iter_mut().find(|b| b.key(kind) == key) {
                    Some(slot) => *slot = item,
                    None => base.push(item),
                }
            }
        }
        let Config {
            virtual_services,
            destination_rules,
            gateways,
            service_entries,
            workload_entries,
            sidecars,
            skipped,
        } = other;
        self.skipped.extend(skipped);
        merge(
            &mut self.virtual_services,
            virtual_services,
            Kind::VirtualService,
        );
        merge(
            &mut self.destination_rules,
            destination_rules,
            Kind::DestinationRule,
        );
        merge(&mut self.gateways, gateways, Kind::Gateway);
        merge(
            &mut self.service_entries,
            service_entries,
            Kind::ServiceEntry,
        );
        merge(
            &mut self.workload_entries,
            workload_entries,
            Kind::WorkloadEntry,
        );
        merge(&mut self.sidecars, sidecars, Kind::Sidecar);
        self
    }

    /// How many resources were loaded (skipped paths are not resources).
    pub fn len(&self) -> usize {
        self.virtual_services.len()
            + self.destination_rules.len()
            + self.gateways.len()
            + self.service_entries.len()
            + self.workload_entries.len()
            + self.sidecars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
