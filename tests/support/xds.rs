//! Test harness for the xDS server: an in-process server on 127.0.0.1:0, scripted ADS clients, and tiny
//! resource fixtures. Every wait has a deadline; absence of a push is shown by a sentinel request whose
//! answer must come first (the server answers in order), never by sleeping.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use switchyard::xds::{
    AdsServer, Cache, ProxyRegistry, ProxyStatus, ResourceType, Snapshot, XdsLimits,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running server; shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// A handle on the running server (its connections, its queued bytes).
    pub ads: AdsServer,
    pub cache: Cache,
    pub registry: ProxyRegistry,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), switchyard::xds::ServeError>>,
}

impl TestServer {
    pub async fn start(snapshot: Snapshot) -> TestServer {
        TestServer::start_with(Cache::uniform(snapshot)).await
    }

    pub async fn start_with(cache: Cache) -> TestServer {
        TestServer::start_on("127.0.0.1:0".parse().unwrap(), cache).await
    }

    /// Binds `addr` (a restarted server takes its predecessor's port).
    pub async fn start_on(addr: SocketAddr, cache: Cache) -> TestServer {
        TestServer::start_limited(addr, cache, XdsLimits::default()).await
    }

    pub async fn start_limited(addr: SocketAddr, cache: Cache, limits: XdsLimits) -> TestServer {
        let listener = AdsServer::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let registry = ProxyRegistry::default();
        let (tx, rx) = oneshot::channel::<()>();
        let server = AdsServer::with_limits(cache.clone(), registry.clone(), limits);
        let ads = server.clone();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            ads,
            cache,
            registry,
            shutdown: tx,
            task,
        }
    }

    /// Shuts the server down and waits until it has returned.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("server did not stop")
            .expect("server task panicked")
            .expect("server failed");
    }

    pub async fn sotw(&self, node_id: &str) -> SotwClient {
        sotw_client(self.addr, node(node_id)).await
    }

    pub async fn delta(&self, node_id: &str) -> DeltaClient {
        delta_client(self.addr, node(node_id)).await
    }

    /// Waits until the proxy has acknowledged `version` of type `t`.
    pub async fn wait_for_ack(&self, node_id: &str, t: ResourceType, version: &str) -> ProxyStatus {
        self.wait_for_status(node_id, &format!("{t} ack of {version}"), |s| {
            s.types.get(&t).and_then(|t| t.acked_version.as_deref()) == Some(version)
        })
        .await
    }

    /// Waits until the proxy's latest response of type `t` is (or is no longer) rejected.
    pub async fn wait_for_rejection(
        &self,
        node_id: &str,
        t: ResourceType,
        rejected: bool,
    ) -> ProxyStatus {
        let what = if rejected {
            "rejection"
        } else {
            "rejection to clear"
        };
        self.wait_for_status(node_id, &format!("{t} {what}"), |s| {
            s.types.get(&t).is_some_and(|t| t.rejected == rejected)
        })
        .await
    }

    /// The newest stream of this node id, which must exist.
    pub fn latest(&self, node_id: &str) -> ProxyStatus {
        self.registry
            .latest_by_node_id(node_id)
            .unwrap_or_else(|| panic!("{node_id} is not connected"))
    }

    /// Polls the registry until `check` holds for the proxy with this node id.
    pub async fn wait_for_status(
        &self,
        node_id: &str,
        what: &str,
        check: impl Fn(&ProxyStatus) -> bool,
    ) -> ProxyStatus {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(s) = self.registry.by_node_id(node_id).into_iter().find(&check) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; registry: {:#?}",
                self.registry.list()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A generation that cannot identify anyone, as before the first valid configuration.
pub struct Nobody;

impl switchyard::xds::Generation for Nobody {
    fn snapshot_for(&self, _node: &Node) -> Result<std::sync::Arc<Snapshot>, String> {
        Err("no workload matches this node".to_string())
    }
}

/// An ADS channel to any server (for example a whole `ControlPlane`). `window` limits the HTTP/2 stream
/// window, to see what the server does when a client stops reading.
async fn connect(
    addr: SocketAddr,
    window: Option<u32>,
) -> AggregatedDiscoveryServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect()
        .await
        .unwrap();
    AggregatedDiscoveryServiceClient::new(channel)
}

/// A SotW client for the server at `addr`, identifying itself as `node` on its first request.
pub async fn sotw_client(addr: SocketAddr, node: Node) -> SotwClient {
    sotw_client_with_window(addr, node, None).await
}

pub async fn sotw_client_with_window(
    addr: SocketAddr,
    node: Node,
    window: Option<u32>,
) -> SotwClient {
    sotw_over(connect(addr, window).await, node).await.unwrap()
}

/// A Delta client for the server at `addr`, identifying itself as `node` on its first request.
pub async fn delta_client(addr: SocketAddr, node: Node) -> DeltaClient {
    delta_over(connect(addr, None).await, node).await.unwrap()
}

/// A SotW stream over any channel (a TLS one, say); the error if the server refuses it at once.
pub async fn sotw_over(
    mut client: AggregatedDiscoveryServiceClient<Channel>,
    node: Node,
) -> Result<SotwClient, tonic::Status> {
    let (tx, rx) = mpsc::channel(16);
    let responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Client::new(node, tx, responses))
}

pub async fn delta_over(
    mut client: AggregatedDiscoveryServiceClient<Channel>,
    node: Node,
) -> Result<DeltaClient, tonic::Status> {
    let (tx, rx) = mpsc::channel(16);
    let responses = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Client::new(node, tx, responses))
}

pub fn node(id: &str) -> Node {
    Node {
        id: id.to_string(),
        cluster: "test".to_string(),
        ..Default::default()
    }
}

/// What the generic client needs to know of the two protocols' messages.
pub trait Request: Send + 'static {
    fn set_node(&mut self, node: Node);
}
pub trait Response {
    fn type_url(&self) -> &str;
}

impl Request for DiscoveryRequest {
    fn set_node(&mut self, node: Node) {
        self.node = Some(node);
    }
}
impl Request for DeltaDiscoveryRequest {
    fn set_node(&mut self, node: Node) {
        self.node = Some(node);
    }
}
impl Response for DiscoveryResponse {
    fn type_url(&self) -> &str {
        &self.type_url
    }
}
impl Response for DeltaDiscoveryResponse {
    fn type_url(&self) -> &str {
        &self.type_url
    }
}

/// A scripted ADS client: sends what the test says, the node on the first request only (as Envoy does).
pub struct Client<Req, Resp> {
    pub node: Node,
    first: bool,
    tx: mpsc::Sender<Req>,
    responses: Streaming<Resp>,
}

pub type SotwClient = Client<DiscoveryRequest, DiscoveryResponse>;
pub type DeltaClient = Client<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

impl<Req: Request, Resp: Response + std::fmt::Debug> Client<Req, Resp> {
    fn new(node: Node, tx: mpsc::Sender<Req>, responses: Streaming<Resp>) -> Self {
        Client {
            node,
            first: true,
            tx,
            responses,
        }
    }

    pub async fn send(&mut self, mut req: Req) {
        if std::mem::take(&mut self.first) {
            req.set_node(self.node.clone());
        }
        self.tx.send(req).await.unwrap();
    }

    pub async fn recv(&mut self) -> Resp {
        match tokio::time::timeout(DEADLINE, self.responses.message()).await {
            Ok(Ok(Some(r))) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub async fn recv_type(&mut self, t: ResourceType) -> Resp {
        let r = self.recv().await;
        assert_eq!(r.type_url(), t.type_url(), "unexpected response type");
        r
    }

    /// The server ended the stream; returns its status if it gave one.
    pub async fn expect_end(&mut self) -> Option<tonic::Status> {
        match tokio::time::timeout(DEADLINE, self.responses.message()).await {
            Ok(Ok(None)) => None,
            Ok(Err(status)) => Some(status),
            other => panic!("expected the stream to end, got {other:?}"),
        }
    }
}

fn error_detail() -> Option<RpcStatus> {
    Some(RpcStatus {
        code: 3,
        message: "bad cluster: nope".to_string(),
        details: vec![],
    })
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

impl SotwClient {
    /// First request for a type.
    pub async fn subscribe(&mut self, t: ResourceType, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: t.type_url().to_string(),
            resource_names: strings(names),
            ..Default::default()
        })
        .await;
    }

    pub async fn ack(&mut self, r: &DiscoveryResponse, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: r.type_url.clone(),
            version_info: r.version_info.clone(),
            response_nonce: r.nonce.clone(),
            resource_names: strings(names),
            ..Default::default()
        })
        .await;
    }

    pub async fn nack(&mut self, r: &DiscoveryResponse, kept_version: &str, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: r.type_url.clone(),
            version_info: kept_version.to_string(),
            response_nonce: r.nonce.clone(),
            resource_names: strings(names),
            error_detail: error_detail(),
            ..Default::default()
        })
        .await;
    }

    /// A first request that carries no node at all.
    pub async fn send_without_node(&mut self, t: ResourceType) {
        self.first = false;
        self.subscribe(t, &[]).await;
    }

    /// Shows that nothing was pushed for other types before: subscribes to `sentinel` (a type not yet
    /// subscribed) and asserts that its answer is the very next response.
    pub async fn expect_quiet(
        &mut self,
        sentinel: ResourceType,
        names: &[&str],
    ) -> DiscoveryResponse {
        self.subscribe(sentinel, names).await;
        self.recv_type(sentinel).await
    }
}

impl DeltaClient {
    pub async fn subscribe(&mut self, t: ResourceType, names: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: t.type_url().to_string(),
            resource_names_subscribe: strings(names),
            ..Default::default()
        })
        .await;
    }

    pub async fn ack(&mut self, r: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    pub async fn nack(&mut self, r: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            error_detail: error_detail(),
            ..Default::default()
        })
        .await;
    }
}

pub fn names_of(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|r| r.name.clone()).collect()
}
