//! `Sidecar` (networking.istio.io/v1): which services a sidecar may reach, Istio's own lever for scale. Only
//! `workloadSelector` and `egress[].hosts` so far.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::NotSupported;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Sidecar {
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    #[serde(default)]
    pub ingress: Option<NotSupported>,
    #[serde(default)]
    pub outbound_traffic_policy: Option<NotSupported>,
    #[serde(default)]
    pub inbound_connection_pool: Option<NotSupported>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EgressListener {
    /// `namespace/dnsName`: `.` is the sidecar's own namespace, `*` any namespace, `~` none; the name may be
    /// `*` or start with `*.`.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub port: Option<NotSupported>,
    #[serde(default)]
    pub bind: Option<NotSupported>,
    #[serde(default)]
    pub capture_mode: Option<NotSupported>,
}
