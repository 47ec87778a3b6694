//! A connected proxy, as far as the figures need it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::node_id::keys;
use crate::xds::status::{ProxyStatus, TypeStatus};
use crate::xds::ResourceType;

/// A connected proxy as the figures need it: the admin endpoint's JSON for it (`switchyard top` reads
/// `/debug/proxies`), or the registry's entry (the server).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ProxyView {
    pub stream: u64,
    pub node_id: String,
    #[serde(default)]
    pub metadata: serde_json::Value,
    #[serde(default)]
    pub types: BTreeMap<ResourceType, TypeStatus>,
}

impl From<&ProxyStatus> for ProxyView {
    fn from(p: &ProxyStatus) -> ProxyView {
        ProxyView {
            stream: p.stream,
            node_id: p.node_id.clone(),
            metadata: p.metadata.clone(),
            types: p.types.clone(),
        }
    }
}

impl ProxyView {
    /// Its pod IP: the first of the `INSTANCE_IPS` it declared.
    pub fn pod_ip(&self) -> Option<IpAddr> {
        self.metadata[keys::INSTANCE_IPS]
            .as_str()?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The worst state over its types.
    pub fn sync(&self) -> &'static str {
        let states: Vec<&str> = self.types.values().map(TypeStatus::state).collect();
        ["REJECTED", "STALE", "NOT SENT"]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or(if states.is_empty() {
                "NOT SENT"
            } else {
                "SYNCED"
            })
    }
}
