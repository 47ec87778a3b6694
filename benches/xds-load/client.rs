//! Simulated proxies: one ADS stream each, speaking SotW or Delta the way Envoy does.
//!
//! Each proxy asks CDS (wildcard) first, then EDS by the service names of the EDS clusters it received, then
//! LDS (wildcard) once its first endpoints arrived, then RDS by the route names of its listeners' HTTP
//! connection managers. Every resource is decoded into its envoy-types message before the response is
//! ACKed. What a proxy runs is kept as a fingerprint per type (a wrapping sum of a hash of each resource's
//! name and bytes, so it can be updated resource by resource in Delta); the run compares it with the
//! fingerprint the proxy should reach (see `oracle.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::{
    cluster::{ClusterDiscoveryType, DiscoveryType},
    Cluster,
};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{filter, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::codec::{self, Received};

/// Type indices, in the order Envoy subscribes.
pub const CDS: usize = 0;
pub const EDS: usize = 1;
pub const LDS: usize = 2;
pub const RDS: usize = 3;

pub fn type_urls() -> [String; 4] {
    [
        Cluster::type_url(),
        ClusterLoadAssignment::type_url(),
        Listener::type_url(),
        RouteConfiguration::type_url(),
    ]
}

fn type_index(urls: &[String; 4], url: &str) -> Option<usize> {
    urls.iter().position(|u| u == url)
}

/// Per type, the fingerprint of a set of resources.
pub type Fingerprint = [u64; 4];

/// The contribution of one resource to its type's fingerprint. The oracle uses the same function.
pub fn resource_hash(name: &str, bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(name.as_bytes());
    h.write_u8(0);
    h.write(bytes);
    h.finish()
}

fn name_hash(name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(name.as_bytes());
    h.finish()
}

/// What one proxy received and acknowledged, read and reset by the run between phases.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub acked: Fingerprint,
    /// What the proxy should reach in this phase; `None`: not measured (its workload is gone).
    pub target: Option<Fingerprint>,
    /// Affected in this phase and not converged yet.
    pub waiting: bool,
    pub converged_at: Option<Instant>,
    pub responses: u64,
    pub bytes: u64,
    /// This phase's responses as received (encoded), each with the number of requests the proxy had sent
    /// on its stream before it arrived: the floor replays them paced by that count.
    pub recording: Vec<(u64, Bytes)>,
    pub error: Option<String>,
    /// Connections that failed before the first response and were tried again.
    pub reconnects: u32,
}

/// State shared by all proxies of a run and the run itself.
pub struct Shared {
    pub proxies: Vec<Mutex<ProxyStats>>,
    pub converged: AtomicUsize,
    /// Nanoseconds after `base` of the last response any proxy received.
    pub last_response: AtomicU64,
    pub base: Instant,
    pub record: bool,
    urls: [String; 4],
}

impl Shared {
    pub fn new(proxies: usize, record: bool) -> Shared {
        Shared {
            proxies: (0..proxies).map(|_| Mutex::default()).collect(),
            converged: AtomicUsize::new(0),
            last_response: AtomicU64::new(0),
            base: Instant::now(),
            record,
            urls: type_urls(),
        }
    }

    pub fn stats(&self, proxy: usize) -> MutexGuard<'_, ProxyStats> {
        // Plain counters: whatever a panicking holder left behind is still worth reporting.
        self.proxies[proxy]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn since_last_response(&self) -> std::time::Duration {
        let last = std::time::Duration::from_nanos(self.last_response.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    fn received(&self, proxy: usize, requests: u64, raw: &Bytes) {
        let now = self.base.elapsed().as_nanos() as u64;
        self.last_response.fetch_max(now, Ordering::Relaxed);
        let mut stats = self.stats(proxy);
        stats.responses += 1;
        stats.bytes += raw.len() as u64;
        if self.record {
            stats.recording.push((requests, raw.clone()));
        }
    }

    fn acked(&self, proxy: usize, t: usize, fingerprint: u64) {
        let mut stats = self.stats(proxy);
        stats.acked[t] = fingerprint;
        if stats.waiting && stats.target == Some(stats.acked) {
            stats.waiting = false;
            stats.converged_at = Some(Instant::now());
            self.converged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Sotw,
    Delta,
}

/// Runs proxy `index` until its stream ends; the error (if any) is kept in its stats.
///
/// The connection (tonic's HTTP/2 tasks) lives on `io`, a runtime of its own: the proxies' decoding keeps the
/// main runtime's workers busy for seconds at a time at 1,000 proxies, and HTTP/2 pings queued behind it went
/// unanswered until the server's keepalive timeout closed the connections.
///
/// Like Envoy, a proxy whose connection fails before its first response tries again after a jittered,
/// growing backoff: in a storm of 10,000 connections the kernel's accept queue overflows and resets some.
/// A stream that fails later is not resumed; the run reports its error.
pub async fn run(
    index: usize,
    node: Node,
    endpoint: String,
    mode: Mode,
    shared: Arc<Shared>,
    io: tokio::runtime::Handle,
) {
    const ATTEMPTS: u32 = 8;
    for attempt in 0..ATTEMPTS {
        let outcome = async {
            let endpoint = tonic::transport::Endpoint::from_shared(endpoint.clone())?;
            let channel = io.spawn(async move { endpoint.connect().await }).await??;
            match mode {
                Mode::Sotw => {
                    Sotw::new(index, node.clone(), shared.clone())
                        .run(channel)
                        .await
                }
                Mode::Delta => {
                    Delta::new(index, node.clone(), shared.clone())
                        .run(channel)
                        .await
                }
            }
        }
        .await;
        let Err(e) = outcome else { return };
        let given_up = {
            let mut stats = shared.stats(index);
            let given_up = stats.responses > 0 || attempt + 1 == ATTEMPTS;
            if given_up {
                stats.error = Some(format!("{e:#}"));
            } else {
                stats.reconnects += 1;
            }
            given_up
        };
        if given_up {
            return;
        }
        let backoff = Duration::from_millis(250 << attempt.min(4))
            + Duration::from_millis((index % 250) as u64);
        tokio::time::sleep(backoff).await;
    }
}

fn decode_clusters(resources: &[(&str, &[u8])]) -> anyhow::Result<Vec<(String, Option<String>)>> {
    resources
        .iter()
        .map(|(_, bytes)| {
            let c = Cluster::decode(*bytes).context("decode Cluster")?;
            let eds = match c.cluster_discovery_type {
                Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => Some(
                    c.eds_cluster_config
                        .as_ref()
                        .map(|e| e.service_name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| c.name.clone()),
                ),
                _ => None,
            };
            Ok((c.name, eds))
        })
        .collect()
}

/// A listener's name and the route configurations its HTTP connection managers ask RDS for.
fn decode_listener(bytes: &[u8]) -> anyhow::Result<(String, Vec<String>)> {
    let listener = Listener::decode(bytes).context("decode Listener")?;
    let hcm_url = HttpConnectionManager::type_url();
    let mut routes = Vec::new();
    for chain in &listener.filter_chains {
        for f in &chain.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                continue;
            };
            if any.type_url != hcm_url {
                continue;
            }
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .context("decode HttpConnectionManager")?;
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                routes.push(rds.route_config_name);
            }
        }
    }
    Ok((listener.name, routes))
}

fn decode_named(t: usize, bytes: &[u8]) -> anyhow::Result<String> {
    Ok(match t {
        EDS => {
            ClusterLoadAssignment::decode(bytes)
                .context("decode ClusterLoadAssignment")?
                .cluster_name
        }
        RDS => {
            RouteConfiguration::decode(bytes)
                .context("decode RouteConfiguration")?
                .name
        }
        _ => bail!("not a plain type: {t}"),
    })
}

/// State-of-the-World: one version and nonce per type; EDS and RDS ask by name.
struct Sotw {
    index: usize,
    node: Option<Node>,
    shared: Arc<Shared>,
    tx: Option<mpsc::UnboundedSender<DiscoveryRequest>>,
    requests: u64,
    version: [String; 4],
    nonce: [String; 4],
    eds_names: Vec<String>,
    rds_names: Vec<String>,
    /// Cluster name hash -> resource hash, for the EDS clusters: a changed one is re-created by Envoy, which
    /// then asks for its endpoints again.
    eds_clusters: BTreeMap<u64, u64>,
    lds_requested: bool,
}

impl Sotw {
    fn new(index: usize, node: Node, shared: Arc<Shared>) -> Sotw {
        Sotw {
            index,
            node: Some(node),
            shared,
            tx: None,
            requests: 0,
            version: Default::default(),
            nonce: Default::default(),
            eds_names: Vec::new(),
            rds_names: Vec::new(),
            eds_clusters: BTreeMap::new(),
            lds_requested: false,
        }
    }

    fn send(&mut self, t: usize, names: Vec<String>) -> anyhow::Result<()> {
        // An ACK and a request for other names both carry the last version and nonce of the type; a first
        // request carries none (both are still empty).
        let (version_info, response_nonce) = (self.version[t].clone(), self.nonce[t].clone());
        let request = DiscoveryRequest {
            // The node goes on the first request only, as Istio's bootstrap asks of Envoy.
            node: self.node.take(),
            type_url: self.shared.urls[t].clone(),
            version_info,
            response_nonce,
            resource_names: names,
            ..DiscoveryRequest::default()
        };
        self.requests += 1;
        let tx = self.tx.as_ref().context("stream not open")?;
        tx.send(request).ok().context("stream closed")
    }

    async fn run(mut self, channel: tonic::transport::Channel) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx = Some(tx);
        // The first request is queued before the call: the server answers headers only once it has it.
        self.send(CDS, Vec::new())?;
        let mut inbound = codec::open::<_, DiscoveryResponse>(
            channel,
            codec::SOTW,
            UnboundedReceiverStream::new(rx),
        )
        .await?;
        while let Some(Received { raw, message }) = inbound.message().await? {
            self.shared.received(self.index, self.requests, &raw);
            self.on_response(message)?;
        }
        Ok(())
    }

    fn on_response(&mut self, response: DiscoveryResponse) -> anyhow::Result<()> {
        let t = type_index(&self.shared.urls, &response.type_url)
            .with_context(|| format!("unexpected type {}", response.type_url))?;
        self.version[t] = response.version_info.clone();
        self.nonce[t] = response.nonce.clone();
        let resources: Vec<(&str, &[u8])> = response
            .resources
            .iter()
            .map(|a: &Any| (a.type_url.as_str(), a.value.as_slice()))
            .collect();
        let mut fingerprint = 0u64;
        match t {
            CDS => {
                let clusters = decode_clusters(&resources)?;
                let mut eds_names = BTreeSet::new();
                let mut eds_clusters = BTreeMap::new();
                let mut recreated = false;
                for ((name, eds), (_, bytes)) in clusters.iter().zip(&resources) {
                    let h = resource_hash(name, bytes);
                    fingerprint = fingerprint.wrapping_add(h);
                    if let Some(eds) = eds {
                        let key = name_hash(name);
                        recreated |= self.eds_clusters.get(&key).is_some_and(|old| *old != h);
                        eds_clusters.insert(key, h);
                        eds_names.insert(eds.clone());
                    }
                }
                self.eds_clusters = eds_clusters;
                let eds_names: Vec<String> = eds_names.into_iter().collect();
                let first = !self.lds_requested && self.nonce[EDS].is_empty();
                if eds_names != self.eds_names || recreated {
                    self.eds_names = eds_names;
                    self.send(EDS, self.eds_names.clone())?;
                }
                self.send(CDS, Vec::new())?;
                if first && self.eds_names.is_empty() {
                    self.lds_requested = true;
                    self.send(LDS, Vec::new())?;
                }
            }
            LDS => {
                let mut rds_names = BTreeSet::new();
                for (_, bytes) in &resources {
                    let (name, routes) = decode_listener(bytes)?;
                    fingerprint = fingerprint.wrapping_add(resource_hash(&name, bytes));
                    rds_names.extend(routes);
                }
                let rds_names: Vec<String> = rds_names.into_iter().collect();
                if rds_names != self.rds_names {
                    self.rds_names = rds_names;
                    self.send(RDS, self.rds_names.clone())?;
                }
                self.send(LDS, Vec::new())?;
            }
            _ => {
                for (_, bytes) in &resources {
                    let name = decode_named(t, bytes)?;
                    fingerprint = fingerprint.wrapping_add(resource_hash(&name, bytes));
                }
                let names = if t == EDS {
                    self.eds_names.clone()
                } else {
                    self.rds_names.clone()
                };
                self.send(t, names)?;
                if t == EDS && !self.lds_requested {
                    self.lds_requested = true;
                    self.send(LDS, Vec::new())?;
                }
            }
        }
        self.shared.acked(self.index, t, fingerprint);
        Ok(())
    }
}

/// Delta: per-resource versions; EDS and RDS subscribed and unsubscribed by name.
struct Delta {
    index: usize,
    node: Option<Node>,
    shared: Arc<Shared>,
    tx: Option<mpsc::UnboundedSender<DeltaDiscoveryRequest>>,
    requests: u64,
    /// Per type: resource name hash -> resource hash.
    resources: [BTreeMap<u64, u64>; 4],
    fingerprint: Fingerprint,
    /// Cluster name hash -> its EDS service name; listener name hash -> its route names.
    cluster_eds: BTreeMap<u64, String>,
    listener_rds: BTreeMap<u64, Vec<String>>,
    subscribed: [BTreeSet<String>; 4],
    lds_requested: bool,
}

impl Delta {
    fn new(index: usize, node: Node, shared: Arc<Shared>) -> Delta {
        Delta {
            index,
            node: Some(node),
            shared,
            tx: None,
            requests: 0,
            resources: Default::default(),
            fingerprint: [0; 4],
            cluster_eds: BTreeMap::new(),
            listener_rds: BTreeMap::new(),
            subscribed: Default::default(),
            lds_requested: false,
        }
    }

    fn send(&mut self, request: DeltaDiscoveryRequest) -> anyhow::Result<()> {
        self.requests += 1;
        let tx = self.tx.as_ref().context("stream not open")?;
        tx.send(request).ok().context("stream closed")
    }

    /// A wildcard subscription the way Envoy 1.40 starts one: no names at all (the legacy wildcard).
    fn subscribe_wildcard(&mut self, t: usize) -> anyhow::Result<()> {
        let request = DeltaDiscoveryRequest {
            node: self.node.take(),
            type_url: self.shared.urls[t].clone(),
            ..DeltaDiscoveryRequest::default()
        };
        self.send(request)
    }

    /// Subscribes to `wanted` (EDS or RDS) and drops what is no longer wanted, as Envoy does by itself.
    fn resubscribe(&mut self, t: usize, wanted: BTreeSet<String>) -> anyhow::Result<()> {
        let subscribe: Vec<String> = wanted.difference(&self.subscribed[t]).cloned().collect();
        let unsubscribe: Vec<String> = self.subscribed[t].difference(&wanted).cloned().collect();
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return Ok(());
        }
        for name in &unsubscribe {
            if let Some(old) = self.resources[t].remove(&name_hash(name)) {
                self.fingerprint[t] = self.fingerprint[t].wrapping_sub(old);
            }
        }
        self.subscribed[t] = wanted;
        let request = DeltaDiscoveryRequest {
            type_url: self.shared.urls[t].clone(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..DeltaDiscoveryRequest::default()
        };
        self.send(request)
    }

    async fn run(mut self, channel: tonic::transport::Channel) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx = Some(tx);
        self.subscribe_wildcard(CDS)?;
        let mut inbound = codec::open::<_, DeltaDiscoveryResponse>(
            channel,
            codec::DELTA,
            UnboundedReceiverStream::new(rx),
        )
        .await?;
        while let Some(Received { raw, message }) = inbound.message().await? {
            self.shared.received(self.index, self.requests, &raw);
            self.on_response(message)?;
        }
        Ok(())
    }

    fn on_response(&mut self, response: DeltaDiscoveryResponse) -> anyhow::Result<()> {
        let t = type_index(&self.shared.urls, &response.type_url)
            .with_context(|| format!("unexpected type {}", response.type_url))?;
        for resource in &response.resources {
            let Some(any) = &resource.resource else {
                continue;
            };
            let bytes = any.value.as_slice();
            let key = name_hash(&resource.name);
            match t {
                CDS => {
                    let (_, eds) = decode_clusters(&[(resource.name.as_str(), bytes)])?
                        .pop()
                        .context("one cluster")?;
                    match eds {
                        Some(eds) => self.cluster_eds.insert(key, eds),
                        None => self.cluster_eds.remove(&key),
                    };
                }
                LDS => {
                    let (_, routes) = decode_listener(bytes)?;
                    self.listener_rds.insert(key, routes);
                }
                _ => {
                    decode_named(t, bytes)?;
                }
            }
            let h = resource_hash(&resource.name, bytes);
            let old = self.resources[t].insert(key, h).unwrap_or(0);
            self.fingerprint[t] = self.fingerprint[t].wrapping_sub(old).wrapping_add(h);
        }
        for name in &response.removed_resources {
            let key = name_hash(name);
            if let Some(old) = self.resources[t].remove(&key) {
                self.fingerprint[t] = self.fingerprint[t].wrapping_sub(old);
            }
            self.cluster_eds.remove(&key);
            self.listener_rds.remove(&key);
        }
        match t {
            CDS => {
                let wanted = self.cluster_eds.values().cloned().collect();
                self.resubscribe(EDS, wanted)?;
            }
            LDS => {
                let wanted = self.listener_rds.values().flatten().cloned().collect();
                self.resubscribe(RDS, wanted)?;
            }
            _ => {}
        }
        let ack = DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        };
        self.send(ack)?;
        let waiting_for_endpoints = t == CDS && !self.subscribed[EDS].is_empty();
        if !self.lds_requested && (t == EDS || (t == CDS && !waiting_for_endpoints)) {
            self.lds_requested = true;
            self.subscribe_wildcard(LDS)?;
        }
        // An unsubscription changes the EDS/RDS fingerprint too.
        for u in [t, EDS, RDS] {
            self.shared.acked(self.index, u, self.fingerprint[u]);
        }
        Ok(())
    }
}
