//! What the fuzz targets share: the pipeline from spec text to Envoy resources, and the snapshots the stream
//! targets switch between.

use std::sync::OnceLock;

use switchyard::mesh::{self, Mesh, Proxy, Router, Sidecar};
use switchyard::spec;
use switchyard::translate::{self, Resources};
use switchyard::xds::Snapshot;

/// Spec text through the loader and the validator; `None` where either rejects it (which is fine: rejecting is
/// what they are for, and a rejection must never panic).
pub fn resolve(text: &str) -> Option<std::sync::Arc<Mesh>> {
    let config = spec::load_str("fuzz.yaml", text).ok()?;
    mesh::resolve(&config).ok().map(|r| r.mesh)
}

/// Every proxy the mesh can serve: a sidecar per WorkloadEntry and a router per Gateway selector.
pub fn proxies(mesh: &Mesh) -> Vec<Proxy> {
    let mut out: Vec<Proxy> = mesh
        .workloads
        .values()
        .enumerate()
        .map(|(i, w)| {
            Proxy::Sidecar(Sidecar {
                egress: mesh
                    .egress_scope_for(&w.namespace, &w.labels)
                    .map(str::to_owned),
                namespace: w.namespace.clone(),
                workload: w.name.clone(),
                labels: w.labels.clone(),
                ip: format!("127.0.1.{}", i % 250 + 1),
                app_ip: "127.0.0.1".to_owned(),
                outbound_ip: "127.0.0.1".to_owned(),
            })
        })
        .collect();
    for (key, gateway) in mesh.gateways.iter() {
        out.push(Proxy::Router(Router {
            namespace: key.split('/').next().unwrap_or("default").to_owned(),
            name: "gateway".to_owned(),
            labels: gateway.selector.clone(),
            ip: "127.0.2.1".to_owned(),
            gateways: mesh
                .gateways
                .iter()
                .filter(|(_, g)| mesh::labels_match(&g.selector, &gateway.selector))
                .map(|(k, _)| k.clone())
                .collect(),
        }));
    }
    out
}

pub fn snapshot_of(r: &Resources) -> Snapshot {
    let mut b = Snapshot::builder();
    for c in &r.clusters {
        b = b.cluster(c);
    }
    for e in &r.endpoints {
        b = b.endpoint(e);
    }
    for l in &r.listeners {
        b = b.listener(l);
    }
    for rc in &r.routes {
        b = b.route(rc);
    }
    b.build()
}

const BOOKINFO: [&str; 4] = [
    include_str!("../../config/bookinfo-services.yaml"),
    include_str!("../../config/bookinfo-workloads.yaml"),
    include_str!("../../config/bookinfo-gateway.yaml"),
    include_str!("../../config/destination-rule-all.yaml"),
];

/// Snapshots a stream target switches between: Bookinfo's productpage sidecar, the same with half of each type
/// gone, and nothing at all.
pub fn stream_snapshots() -> &'static [Snapshot] {
    static SNAPSHOTS: OnceLock<Vec<Snapshot>> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        let mesh = resolve(&BOOKINFO.join("\n---\n")).expect("the Bookinfo config resolves");
        let proxy = proxies(&mesh)
            .into_iter()
            .find(|p| matches!(p, Proxy::Sidecar(s) if s.workload.starts_with("productpage")))
            .expect("a productpage sidecar");
        let full = translate::translate(&mesh, &proxy);
        let mut half = full.clone();
        half.clusters.truncate(full.clusters.len() / 2);
        half.endpoints.truncate(full.endpoints.len() / 2);
        half.listeners.truncate(full.listeners.len() / 2);
        half.routes.truncate(full.routes.len() / 2);
        vec![
            snapshot_of(&full),
            snapshot_of(&half),
            snapshot_of(&Resources::default()),
        ]
    })
}

/// Resource names a stream target picks from: some the snapshots have, some they never do.
pub fn name_pool() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let full = &stream_snapshots()[0];
        let mut names: Vec<String> = switchyard::xds::ResourceType::ALL
            .iter()
            .flat_map(|t| full.all(*t).into_iter().map(|e| e.name.clone()))
            .collect();
        names.extend(["*".to_owned(), "missing".to_owned(), String::new()]);
        names
    })
}

/// How a stream target picks a nonce or a version: none, the latest it was sent, an earlier one, or garbage.
#[derive(arbitrary::Arbitrary, Debug, Clone)]
pub enum Pick {
    Empty,
    Latest,
    Earlier(u8),
    Garbage(String),
}

/// What a stream target has been sent, per response: type URL, nonce, version.
#[derive(Default)]
pub struct Sent(pub Vec<(String, String, String)>);

impl Sent {
    fn of_type(&self, type_url: &str) -> Vec<&(String, String, String)> {
        self.0.iter().filter(|(t, _, _)| t == type_url).collect()
    }

    /// The nonce `pick` names among the responses of `type_url`.
    pub fn nonce(&self, type_url: &str, pick: &Pick) -> String {
        self.pick(type_url, pick, |(_, nonce, _)| nonce.clone())
    }

    /// The version `pick` names among the responses of `type_url`.
    pub fn version(&self, type_url: &str, pick: &Pick) -> String {
        self.pick(type_url, pick, |(_, _, version)| version.clone())
    }

    fn pick(
        &self,
        type_url: &str,
        pick: &Pick,
        field: impl Fn(&(String, String, String)) -> String,
    ) -> String {
        let sent = self.of_type(type_url);
        match pick {
            Pick::Empty => String::new(),
            Pick::Garbage(s) => s.clone(),
            Pick::Latest => sent.last().map(|s| field(s)).unwrap_or_default(),
            Pick::Earlier(i) if sent.is_empty() => i.to_string(),
            Pick::Earlier(i) => field(sent[usize::from(*i) % sent.len()]),
        }
    }

    /// Records a response, asserting its nonce was never used before on this stream.
    pub fn record(&mut self, type_url: &str, nonce: &str, version: &str) {
        assert!(
            !self.0.iter().any(|(_, n, _)| n == nonce),
            "nonce {nonce} sent twice"
        );
        self.0
            .push((type_url.to_owned(), nonce.to_owned(), version.to_owned()));
    }
}

/// The type a stream target's byte names: the four served types, or one that is not served.
pub fn type_url_of(byte: u8) -> String {
    match switchyard::xds::ResourceType::ALL.get(usize::from(byte % 5)) {
        Some(t) => t.type_url().to_owned(),
        None => "type.googleapis.com/envoy.config.core.v3.Unknown".to_owned(),
    }
}

/// The resource names a stream target's bytes pick from [`name_pool`].
pub fn names_of(picks: &[u8]) -> Vec<String> {
    let pool = name_pool();
    picks
        .iter()
        .take(16)
        .map(|i| pool[usize::from(*i) % pool.len()].clone())
        .collect()
}

/// The name of an encoded resource of type `t`.
pub fn resource_name(
    t: switchyard::xds::ResourceType,
    any: &envoy_types::pb::google::protobuf::Any,
) -> String {
    use envoy_types::pb::envoy::config::{
        cluster::v3::Cluster, endpoint::v3::ClusterLoadAssignment, listener::v3::Listener,
        route::v3::RouteConfiguration,
    };
    use prost::Message;
    use switchyard::xds::ResourceType as T;
    let bytes = any.value.as_slice();
    match t {
        T::Cluster => Cluster::decode(bytes).expect("a cluster").name,
        T::Endpoint => {
            ClusterLoadAssignment::decode(bytes)
                .expect("an assignment")
                .cluster_name
        }
        T::Listener => Listener::decode(bytes).expect("a listener").name,
        T::Route => RouteConfiguration::decode(bytes).expect("a route").name,
    }
}
