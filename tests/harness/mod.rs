//! Test harness for the xDS server: an in-process server on 127.0.0.1:0, scripted ADS clients, and tiny
//! resource fixtures. Every wait has a deadline; absence of a push is shown by a sentinel request whose
//! answer must come first (the server answers in order), never by sleeping.
#![allow(dead_code)]

pub mod fixtures;

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use switchyard::xds::{AdsServer, Cache, ProxyRegistry, ResourceType, Snapshot};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running server; shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
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
        let listener = AdsServer::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let registry = ProxyRegistry::default();
        let (tx, rx) = oneshot::channel::<()>();
        let server = AdsServer::new(cache.clone(), registry.clone());
        let task = tokio::spawn(server.serve(listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
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

    async fn client(&self) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    pub async fn sotw(&self, node_id: &str) -> SotwClient {
        let (tx, rx) = mpsc::channel(16);
        let responses = self
            .client()
            .await
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        SotwClient {
            node: node(node_id),
            first: true,
            tx,
            responses,
        }
    }

    pub async fn delta(&self, node_id: &str) -> DeltaClient {
        let (tx, rx) = mpsc::channel(16);
        let responses = self
            .client()
            .await
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        DeltaClient {
            node: node(node_id),
            first: true,
            tx,
            responses,
        }
    }

    /// Polls the registry until `check` holds for the proxy with this node id.
    pub async fn wait_for_status(
        &self,
        node_id: &str,
        what: &str,
        check: impl Fn(&switchyard::xds::ProxyStatus) -> bool,
    ) -> switchyard::xds::ProxyStatus {
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

/// An ADS channel to any server (for example a whole `ControlPlane`).
async fn connect(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// A SotW client for the server at `addr`, identifying itself as `node` on its first request.
pub async fn sotw_client(addr: SocketAddr, node: Node) -> SotwClient {
    let (tx, rx) = mpsc::channel(16);
    let responses = connect(addr)
        .await
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    SotwClient {
        node,
        first: true,
        tx,
        responses,
    }
}

/// A Delta client for the server at `addr`, identifying itself as `node` on its first request.
pub async fn delta_client(addr: SocketAddr, node: Node) -> DeltaClient {
    let (tx, rx) = mpsc::channel(16);
    let responses = connect(addr)
        .await
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    DeltaClient {
        node,
        first: true,
        tx,
        responses,
    }
}

pub fn node(id: &str) -> Node {
    Node {
        id: id.to_string(),
        cluster: "test".to_string(),
        ..Default::default()
    }
}

pub struct SotwClient {
    pub node: Node,
    first: bool,
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
}

impl SotwClient {
    pub async fn send(&mut self, mut req: DiscoveryRequest) {
        if std::mem::take(&mut self.first) {
            req.node = Some(self.node.clone());
        }
        self.tx.send(req).await.unwrap();
    }

    /// First request for a type.
    pub async fn subscribe(&mut self, t: ResourceType, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: t.type_url(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await;
    }

    pub async fn ack(&mut self, r: &DiscoveryResponse, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: r.type_url.clone(),
            version_info: r.version_info.clone(),
            response_nonce: r.nonce.clone(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await;
    }

    pub async fn nack(&mut self, r: &DiscoveryResponse, kept_version: &str, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: r.type_url.clone(),
            version_info: kept_version.to_string(),
            response_nonce: r.nonce.clone(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: "bad cluster: nope".to_string(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(DEADLINE, self.responses.message()).await {
            Ok(Ok(Some(r))) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The server ended the stream.
    pub async fn expect_end(&mut self) {
        match tokio::time::timeout(DEADLINE, self.responses.message()).await {
            Ok(Ok(None)) | Ok(Err(_)) => {}
            other => panic!("expected the stream to end, got {other:?}"),
        }
    }

    pub async fn recv_type(&mut self, t: ResourceType) -> DiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(r.type_url, t.type_url(), "unexpected response type");
        r
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

pub struct DeltaClient {
    pub node: Node,
    first: bool,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl DeltaClient {
    pub async fn send(&mut self, mut req: DeltaDiscoveryRequest) {
        if std::mem::take(&mut self.first) {
            req.node = Some(self.node.clone());
        }
        self.tx.send(req).await.unwrap();
    }

    pub async fn subscribe(&mut self, t: ResourceType, names: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: t.type_url(),
            resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
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
            error_detail: Some(RpcStatus {
                code: 3,
                message: "bad cluster: nope".to_string(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        match tokio::time::timeout(DEADLINE, self.responses.message()).await {
            Ok(Ok(Some(r))) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub async fn recv_type(&mut self, t: ResourceType) -> DeltaDiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(r.type_url, t.type_url(), "unexpected response type");
        r
    }
}

pub fn names_of(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|r| r.name.clone()).collect()
}
