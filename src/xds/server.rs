//! The gRPC glue: one task per ADS stream that reads requests, watches the cache and sends what the
//! protocol state machine decides. No protocol logic lives here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::Stream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use super::cache::{Cache, Generation};
use super::delta::DeltaStream;
use super::event::{Event, Step};
use super::grpc::AdsService;
use super::identity::{IdentityPolicy, Peer};
use super::snapshot::Snapshot;
use super::sotw::SotwStream;
use super::status::{Mode, ProxyRegistry, Registration};
use super::tls::{TlsError, XdsTls};

/// Responses waiting to be written to one stream. Small on purpose: a proxy that does not read makes its
/// stream task wait, and when it resumes it computes from the newest snapshot, so nothing piles up.
const OUTBOUND_BUFFER: usize = 4;

/// How long a shutting-down server waits for its connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind the xDS server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("xDS server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The ADS service (both State-of-the-World and Delta).
#[derive(Clone, Debug)]
pub struct AdsServer {
    cache: Cache,
    registry: ProxyRegistry,
    /// Set once the server shuts down: streams never end on their own, so they are told to.
    closing: Arc<watch::Sender<bool>>,
    /// Which nodes a stream's TLS peer may claim.
    identity: IdentityPolicy,
}

impl AdsServer {
    pub fn new(cache: Cache, registry: ProxyRegistry) -> AdsServer {
        AdsServer {
            cache,
            registry,
            closing: Arc::new(watch::channel(false).0),
            identity: IdentityPolicy::Open,
        }
    }

    /// Ends every open stream now, and every stream opened from now on. `serve` does this when its shutdown
    /// future resolves; an owner that is dropped without a graceful shutdown calls it directly, because
    /// tonic's per-connection tasks would otherwise keep serving the last generation.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Serves on `listener` until `shutdown` resolves, then ends every open stream (proxies reconnect to
    /// whichever server comes next) and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.serve_incoming(TcpListenerStream::new(listener), shutdown)
            .await
    }

    /// As [`AdsServer::serve`], over TLS; with a client CA, each stream may only claim the node its
    /// certificate names (see `xds::identity`).
    pub async fn serve_tls(
        mut self,
        listener: TcpListener,
        tls: &XdsTls,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.identity = tls.identity_policy();
        let incoming = tls.incoming(listener)?;
        self.serve_incoming(incoming, shutdown).await
    }

    async fn serve_incoming<IO, IE>(
        self,
        incoming: impl Stream<Item = Result<IO, IE>>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError>
    where
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IO::ConnectInfo: Clone + Send + Sync + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let closing = self.closing.clone();
        let mut closed = self.closing.subscribe();
        let shutdown = async move {
            shutdown.await;
            closing.send_replace(true);
        };
        let server = tonic::transport::Server::builder()
            // Detects proxies that vanished without closing their connection.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(AdsService::new(self))
            .serve_with_incoming_shutdown(incoming, shutdown);
        // A graceful shutdown waits until every connection has flushed what it was sent, which a proxy that
        // stopped reading never lets happen: give up on those after a grace period.
        let grace_over = async move {
            let _ = closed.wait_for(|closed| *closed).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            served = server => served?,
            () = grace_over => {
                tracing::warn!("xDS connections still open {SHUTDOWN_GRACE:?} after shutdown; leaving them");
            }
        }
        Ok(())
    }

    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    }
}

type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = self.peer(&request);
        Ok(Response::new(self.spawn_stream(
            request.into_inner(),
            SotwStream::default(),
            peer,
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let peer = self.peer(&request);
        Ok(Response::new(self.spawn_stream(
            request.into_inner(),
            DeltaStream::default(),
            peer,
        )))
    }
}

impl AdsServer {
    fn peer<T>(&self, request: &Request<T>) -> Peer {
        self.identity
            .peer(request.peer_certs().as_deref().map(Vec::as_slice))
    }

    fn spawn_stream<P: Protocol>(
        &self,
        inbound: Streaming<P::Request>,
        protocol: P,
        peer: Peer,
    ) -> ResponseStream<P::Response> {
        let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
        let task = StreamTask {
            protocol,
            inbound,
            outbound: tx,
            generations: self.cache.subscribe(),
            closing: self.closing.subscribe(),
            registry: self.registry.clone(),
            peer,
            node: None,
            registration: None,
            snapshot: None,
        };
        tokio::spawn(task.run());
        ReceiverStream::new(rx)
    }
}

/// What differs between SotW and Delta, as seen by the stream task.
trait Protocol: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: Send + 'static;
    const MODE: Mode;
    fn node(req: &Self::Request) -> Option<&Node>;
    fn on_request(
        &mut self,
        req: &Self::Request,
        snapshot: Option<&Snapshot>,
    ) -> Step<Self::Response>;
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<Self::Response>;
}

impl Protocol for SotwStream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const MODE: Mode = Mode::Sotw;
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Step<DiscoveryResponse> {
        SotwStream::on_request(self, req, snapshot)
    }
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<DiscoveryResponse> {
        SotwStream::on_snapshot(self, snapshot)
    }
}

impl Protocol for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const MODE: Mode = Mode::Delta;
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Step<DeltaDiscoveryResponse> {
        DeltaStream::on_request(self, req, snapshot)
    }
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<DeltaDiscoveryResponse> {
        DeltaStream::on_snapshot(self, snapshot)
    }
}

struct StreamTask<P: Protocol> {
    protocol: P,
    inbound: Streaming<P::Request>,
    outbound: mpsc::Sender<Result<P::Response, Status>>,
    generations: watch::Receiver<Arc<dyn Generation>>,
    closing: watch::Receiver<bool>,
    registry: ProxyRegistry,
    peer: Peer,
    /// Known from the first request on (Envoy sends the node only once per stream).
    node: Option<Node>,
    registration: Option<Registration>,
    snapshot: Option<Arc<Snapshot>>,
}

/// Why a stream task stopped.
enum End {
    ClientClosed,
    ClientError(Status),
    ServerClosed,
    /// The client broke the protocol.
    Rejected(Status),
}

impl<P: Protocol> StreamTask<P> {
    async fn run(mut self) {
        let end = self.serve().await;
        let node_id = self.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
        match end {
            End::ClientClosed => tracing::info!(node = node_id, "proxy disconnected"),
            End::ClientError(status) => {
                tracing::info!(node = node_id, error = %status.message(), "proxy stream ended")
            }
            End::ServerClosed => {
                tracing::debug!(node = node_id, "stream closed by server");
                // Tells the proxy why; it reconnects to whichever server comes next. Never waits: the proxy
                // may have stopped reading.
                let _ = self
                    .outbound
                    .try_send(Err(Status::unavailable("xDS server shutting down")));
            }
            End::Rejected(status) => {
                tracing::warn!(error = %status.message(), "stream refused");
                let _ = self.outbound.try_send(Err(status));
            }
        }
        // Dropping self releases the registration and everything the stream held.
    }

    async fn serve(&mut self) -> End {
        if *self.closing.borrow_and_update() {
            return End::ServerClosed;
        }
        loop {
            tokio::select! {
                // Requests first: an ACK or NACK must be recorded before the next push is decided.
                biased;
                message = self.inbound.message() => {
                    let req = match message {
                        Ok(Some(req)) => req,
                        Ok(None) => return End::ClientClosed,
                        Err(status) => return End::ClientError(status),
                    };
                    if self.node.is_none() {
                        let Some(node) = P::node(&req).map(identity_of) else {
                            return End::Rejected(Status::invalid_argument(
                                "the first request of a stream must carry the node",
                            ));
                        };
                        // Before the stream is registered or served: a refused node leaves no trace.
                        if let Err(denied) = self.peer.authorize(&node) {
                            return End::Rejected(denied);
                        }
                        self.identify(node);
                    }
                    let step = self.protocol.on_request(&req, self.snapshot.as_deref());
                    if let Err(end) = self.emit(step).await {
                        return end;
                    }
                }
                // `closing` only ever changes from false to true.
                _ = self.closing.changed() => return End::ServerClosed,
                changed = self.generations.changed() => {
                    if changed.is_err() {
                        return End::ServerClosed;
                    }
                    if self.refresh_snapshot() {
                        let Some(snapshot) = self.snapshot.clone() else { continue };
                        let step = self.protocol.on_snapshot(&snapshot);
                        if let Err(end) = self.emit(step).await {
                            return end;
                        }
                    }
                }
            }
        }
    }

    fn identify(&mut self, node: Node) {
        tracing::info!(node = %node.id, cluster = %node.cluster, mode = ?P::MODE, "proxy connected");
        self.registration = Some(self.registry.register(&node, P::MODE));
        self.node = Some(node);
        self.generations.mark_unchanged();
        self.refresh_snapshot();
    }

    /// Looks up this proxy's snapshot in the current generation; true if it changed.
    fn refresh_snapshot(&mut self) -> bool {
        let Some(node) = &self.node else {
            return false;
        };
        let generation = self.generations.borrow_and_update().clone();
        let next = match generation.snapshot_for(node) {
            Ok(snapshot) => {
                self.set_identity_error(None);
                Some(snapshot)
            }
            Err(error) => {
                tracing::warn!(node = %node.id, %error, "cannot serve proxy");
                self.set_identity_error(Some(error));
                None
            }
        };
        let changed = match (&self.snapshot, &next) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        self.snapshot = next;
        changed
    }

    fn set_identity_error(&self, error: Option<String>) {
        if let Some(registration) = &self.registration {
            registration.set_identity_error(error);
        }
    }

    /// Records the events and sends the responses, unless the proxy is gone or the server closes while the
    /// proxy is not reading.
    async fn emit(&mut self, step: Step<P::Response>) -> Result<(), End> {
        let node = self.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
        for event in &step.events {
            log_event(node, event);
        }
        if let Some(registration) = &self.registration {
            registration.apply(&step.events);
        }
        for response in step.responses {
            tokio::select! {
                sent = self.outbound.send(Ok(response)) => {
                    if sent.is_err() {
                        return Err(End::ClientClosed);
                    }
                }
                _ = self.closing.wait_for(|closing| *closing) => return Err(End::ServerClosed),
            }
        }
        Ok(())
    }
}

/// What of a node a stream keeps for its life: what identifies the proxy. Envoy's node also lists every
/// extension its binary was built with (hundreds of descriptors, tens of KB per proxy), which nothing reads.
fn identity_of(node: &Node) -> Node {
    Node {
        id: node.id.clone(),
        cluster: node.cluster.clone(),
        metadata: node.metadata.clone(),
        locality: node.locality.clone(),
        ..Node::default()
    }
}

fn log_event(node: &str, event: &Event) {
    match event {
        Event::Nacked { type_, nack } => tracing::warn!(
            node, type_ = %type_, rejected = %nack.rejected_version, kept = %nack.kept_version,
            message = %nack.message, "proxy rejected config"
        ),
        Event::Sent {
            type_,
            version,
            nonce,
            resources,
            removed,
        } => tracing::debug!(
            node, type_ = %type_, %version, %nonce, resources, removed, "sent"
        ),
        Event::Acked { type_, version, .. } => {
            tracing::debug!(node, type_ = %type_, %version, "acknowledged")
        }
        Event::Subscribed { type_ } => tracing::debug!(node, type_ = %type_, "subscribed"),
        Event::Ignored { type_url, reason } => {
            tracing::debug!(node, %type_url, reason, "ignored request")
        }
    }
}
