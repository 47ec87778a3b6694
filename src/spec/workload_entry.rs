//! `WorkloadEntry` (networking.istio.io/v1): one instance of a service outside Kubernetes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::NotSupported;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEntry {
    #[serde(default)]
    pub address: Option<String>,
    /// Port name (matching the service's port name) to the port this workload listens on.
    #[serde(default)]
    pub ports: BTreeMap<String, u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub weight: Option<u32>,
    /// `region/zone/subzone`.
    #[serde(default)]
    pub locality: Option<String>,
    #[serde(default)]
    pub network: Option<NotSupported>,
    #[serde(default)]
    pub service_account: Option<NotSupported>,
}
