//! The per-proxy record: who is connected and, per type, what was sent, acknowledged and rejected.
//! The admin endpoint (`/debug/proxies`, `/metrics`) and `switchyard proxy-status` read it; each stream's entry
//! disappears when the stream ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use serde::Serialize;

use super::event::Event;
use super::limits::LimitCounters;
use super::metrics::XdsHistograms;
use super::resource_type::{PerType, ResourceType};
use super::subscription::Nack;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Mode {
    Sotw,
    Delta,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TypeStatus {
    pub sent_version: Option<String>,
    pub sent_nonce: Option<String>,
    pub acked_version: Option<String>,
    /// Boxed: the registry keeps a `TypeStatus` per type for every connected proxy, in a map node with room for
    /// eleven, and a rejection is rare.
    pub last_nack: Option<Box<Nack>>,
    /// True while the latest response is rejected (a later ACK clears it; `last_nack` stays as history).
    pub rejected: bool,
}

impl TypeStatus {
    /// SYNCED (acknowledged what was sent), NOT SENT, STALE (sent, not yet acknowledged) or REJECTED (NACK), as
    /// `switchyard proxy-status`, `top` and the dashboard name it.
    pub fn state(&self) -> &'static str {
        if self.rejected {
            "REJECTED"
        } else if self.sent_version.is_none() {
            "NOT SENT"
        } else if self.sent_version == self.acked_version {
            "SYNCED"
        } else {
            "STALE"
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProxyStatus {
    pub stream: u64,
    pub node_id: String,
    pub cluster: String,
    pub metadata: serde_json::Value,
    pub mode: Mode,
    #[serde(serialize_with = "http_date")]
    pub connected_at: SystemTime,
    /// Why this proxy is not being served, if it is not (for example: no workload matches its identity).
    pub identity_error: Option<String>,
    pub types: BTreeMap<ResourceType, TypeStatus>,
    /// The node as the proxy sent it, to look up its snapshot again: the stream's own allocation, not a copy.
    #[serde(skip)]
    node: Arc<Node>,
}

impl ProxyStatus {
    pub fn node(&self) -> Node {
        (*self.node).clone()
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Subscribed { type_ } => {
                self.types.entry(*type_).or_default();
            }
            Event::Sent {
                type_,
                version,
                nonce,
                ..
            } => {
                let s = self.types.entry(*type_).or_default();
                s.sent_version = Some(version.clone());
                s.sent_nonce = Some(nonce.clone());
            }
            Event::Acked { type_, version, .. } => {
                let s = self.types.entry(*type_).or_default();
                s.acked_version = Some(version.clone());
                s.rejected = false;
            }
            Event::Nacked { type_, nack } => {
                let s = self.types.entry(*type_).or_default();
                s.last_nack = Some(Box::new(nack.clone()));
                s.rejected = true;
            }
            Event::Ignored { .. } => {}
        }
    }
}

/// Totals since start, per type, and the distributions of push times, sizes and convergence, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub pushes: PerType<AtomicU64>,
    pub acks: PerType<AtomicU64>,
    pub nacks: PerType<AtomicU64>,
    /// Connections and streams refused or ended by the port's limits.
    pub limits: Arc<LimitCounters>,
    /// Recorded by the stream tasks.
    pub histograms: XdsHistograms,
}

impl Counters {
    fn count(&self, event: &Event) {
        let (counter, t) = match event {
            Event::Sent { type_, .. } => (&self.pushes, type_),
            Event::Acked { type_, .. } => (&self.acks, type_),
            Event::Nacked { type_, .. } => (&self.nacks, type_),
            Event::Subscribed { .. } | Event::Ignored { .. } => return,
        };
        counter[*t].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &PerType<AtomicU64>, t: ResourceType) -> u64 {
        counter[t].load(Ordering::Relaxed)
    }
}

/// All connected proxies. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct ProxyRegistry {
    inner: Arc<Mutex<BTreeMap<u64, ProxyStatus>>>,
    next_stream: Arc<AtomicU64>,
    counters: Arc<Counters>,
}

impl ProxyRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, ProxyStatus>> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, node: Arc<Node>, mode: Mode) -> Registration {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let status = ProxyStatus {
            stream,
            node_id: node.id.clone(),
            cluster: node.cluster.clone(),
            metadata: node
                .metadata
                .as_ref()
                .map(struct_to_json)
                .unwrap_or(serde_json::Value::Null),
            mode,
            connected_at: SystemTime::now(),
            identity_error: None,
            types: BTreeMap::new(),
            node,
        };
        self.lock().insert(stream, status);
        Registration {
            registry: self.clone(),
            stream,
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every connected proxy, by stream id.
    pub fn list(&self) -> Vec<ProxyStatus> {
        self.lock().values().cloned().collect()
    }

    /// Every connected proxy once, as its newest stream, by node id.
    pub fn latest_per_node(&self) -> BTreeMap<String, ProxyStatus> {
        latest_per_node(self.list(), |p| (&p.node_id, p.stream))
    }

    /// The newest stream of this node id.
    pub fn latest_by_node_id(&self, node_id: &str) -> Option<ProxyStatus> {
        latest_per_node(self.by_node_id(node_id), |p| (&p.node_id, p.stream)).remove(node_id)
    }

    /// The proxies with this node id (more than one while a reconnect overlaps the old stream).
    pub fn by_node_id(&self, node_id: &str) -> Vec<ProxyStatus> {
        self.lock()
            .values()
            .filter(|p| p.node_id == node_id)
            .cloned()
            .collect()
    }

    fn update(&self, stream: u64, f: impl FnOnce(&mut ProxyStatus)) {
        if let Some(status) = self.lock().get_mut(&stream) {
            f(status);
        }
    }
}

/// One entry per node id, the one of its newest stream (`key` gives an entry's node id and stream id). While a
/// proxy reconnects, its old stream lingers until the server notices; counting or showing both would show the
/// proxy twice, and the old one out of date. The registry, the metrics and `proxy-status` (which reads the
/// admin endpoint's JSON) all pick the proxy this way.
pub fn latest_per_node<T>(
    streams: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> (&str, u64),
) -> BTreeMap<String, T> {
    let mut latest: BTreeMap<String, T> = BTreeMap::new();
    for entry in streams {
        let (node_id, stream) = key(&entry);
        if latest.get(node_id).is_none_or(|seen| key(seen).1 < stream) {
            latest.insert(node_id.to_owned(), entry);
        }
    }
    latest
}

/// A stream's entry in the registry; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    registry: ProxyRegistry,
    stream: u64,
}

impl Registration {
    pub fn apply(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        for e in events {
            self.registry.counters.count(e);
        }
        self.registry.update(self.stream, |s| {
            for e in events {
                s.apply(e);
            }
        });
    }

    pub fn set_identity_error(&self, error: Option<String>) {
        self.registry
            .update(self.stream, |s| s.identity_error = error);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.stream);
    }
}

/// Timestamps read by people: `Thu, 26 Nov 2026 16:26:08 GMT` rather than seconds since the epoch.
pub fn http_date<S: serde::Serializer>(
    time: &SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&httpdate::fmt_http_date(*time))
}

/// A protobuf `Struct` as JSON, for status output and for reading node metadata.
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}
