//! The gRPC glue: one task per ADS stream that reads requests, watches the cache and sends what the
//! protocol state machine decides. No protocol logic lives here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::transport::server::Connected;
use tonic::{Request, Status};

use super::board::CacheWatch;
use super::cache::Cache;
use super::connections::{Connections, StreamGuard};
use super::convergence::Convergence;
use super::csds::CsdsServer;
use super::delta::DeltaStream;
use super::event::{Event, Step};
use super::frame::Frame;
use super::grpc::{AdsHandlers, AdsService};
use super::identity::{IdentityPolicy, Peer};
use super::limits::{Limit, LimitCounters, XdsLimits};
use super::outbox::{Charge, Closed, Outbox, OutboxStream, PendingBudget};
use super::outgoing::Outgoing;
use super::requests::Requests;
use super::resource_type::ResourceType;
use super::snapshot::Snapshot;
use super::sotw::SotwStream;
use super::status::{Mode, ProxyRegistry, Registration};
use super::tls::{TlsError, XdsTls};

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
    limits: XdsLimits,
    connections: Connections,
    /// Response bytes queued across all streams (`outbox.rs`).
    budget: Arc<PendingBudget>,
}

impl AdsServer {
    /// A server with the default [`XdsLimits`].
    pub fn new(cache: Cache, registry: ProxyRegistry) -> AdsServer {
        AdsServer::with_limits(cache, registry, XdsLimits::default())
    }

    pub fn with_limits(cache: Cache, registry: ProxyRegistry, limits: XdsLimits) -> AdsServer {
        let counters = registry.counters().limits.clone();
        let connections = Connections::new(limits.clone(), counters.clone());
        let budget = PendingBudget::new(limits.max_pending_bytes, counters);
        AdsServer {
            cache,
            registry,
            closing: Arc::new(watch::channel(false).0),
            identity: IdentityPolicy::Open,
            limits,
            connections,
            budget,
        }
    }

    /// Response bytes queued for proxies now, across all streams.
    pub fn pending_bytes(&self) -> usize {
        self.budget.used()
    }

    /// The connections open now (for tests and metrics).
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// Ends every open stream now, and every stream opened from now on. `serve` does this when its shutdown
    /// future resolves; an owner that is dropped without a graceful shutdown calls it directly, because
    /// tonic's per-connection tasks would otherwise keep serving the last generation.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// The ADS service, with requests over `--xds-max-request-bytes` refused.
    pub fn into_service(self) -> AdsService<AdsServer> {
        let max_request = self.limits.max_request_bytes;
        AdsService::new(self, max_request)
    }

    /// Serves on `listener` until `shutdown` resolves, then ends every open stream (proxies reconnect to
    /// whichever server comes next) and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let incoming = self.connections.incoming(listener);
        self.serve_incoming(incoming, shutdown).await
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
        let incoming = tls.incoming(listener, &self.connections)?;
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
            // The hard wall for clients that ignore the setting. One above the ADS limit, so that a client over
            // it hears RESOURCE_EXHAUSTED from the stream task (and is counted) rather than a bare REFUSED_STREAM.
            .max_concurrent_streams(self.limits.max_streams_per_connection.saturating_add(1))
            .add_service(CsdsServer::new(self.cache.clone(), self.registry.clone()).into_service())
            .add_service(self.into_service())
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

/// Framed responses, as the transport takes them.
type ResponseStream = OutboxStream<Frame>;

impl AdsHandlers for AdsServer {
    type SotwResponses = ResponseStream;
    type DeltaResponses = ResponseStream;

    fn sotw(
        &self,
        request: Request<Requests<DiscoveryRequest>>,
    ) -> Result<Self::SotwResponses, Status> {
        let connection = self.connections.open_stream(request.remote_addr())?;
        let peer = self.peer(&request);
        Ok(self.spawn_stream(
            request.into_inner(),
            SotwStream::default(),
            peer,
            connection,
        ))
    }

    fn delta(
        &self,
        request: Request<Requests<DeltaDiscoveryRequest>>,
    ) -> Result<Self::DeltaResponses, Status> {
        let connection = self.connections.open_stream(request.remote_addr())?;
        let peer = self.peer(&request);
        Ok(self.spawn_stream(
            request.into_inner(),
            DeltaStream::default(),
            peer,
            connection,
        ))
    }
}

impl AdsServer {
    fn peer<T>(&self, request: &Request<T>) -> Peer {
        self.identity
            .peer(request.peer_certs().as_deref().map(Vec::as_slice))
    }

    fn spawn_stream<P: Protocol>(
        &self,
        inbound: Requests<P::Request>,
        protocol: P,
        peer: Peer,
        connection: Option<StreamGuard>,
    ) -> ResponseStream {
        let (task, responses) = self.stream_task(inbound, protocol, peer, connection);
        tokio::spawn(task.run());
        responses
    }

    fn stream_task<P: Protocol>(
        &self,
        inbound: Requests<P::Request>,
        protocol: P,
        peer: Peer,
        connection: Option<StreamGuard>,
    ) -> (StreamTask<P>, ResponseStream) {
        let (outbox, responses) = self.budget.outbox();
        let task = StreamTask {
            protocol,
            inbound,
            outbound: outbox,
            cache: self.cache.watch(),
            closing: self.closing.subscribe(),
            registry: self.registry.clone(),
            peer,
            limits: self.limits.clone(),
            refused: self.registry.counters().limits.clone(),
            _connection: connection,
            node: None,
            registration: None,
            snapshot: None,
            convergence: Convergence::default(),
        };
        (task, responses)
    }
}

/// What differs between SotW and Delta, as seen by the stream task.
trait Protocol: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: Send + 'static;
    const MODE: Mode;
    fn node(req: &Self::Request) -> Option<&Node>;
    /// Resource names a request carries.
    fn names_in(req: &Self::Request) -> usize;
    fn type_of(resp: &Self::Response) -> Option<ResourceType>;
    fn frame(resp: &Self::Response) -> Frame;
    fn subscription(&self, t: ResourceType) -> Option<&super::subscription::Subscription>;
    fn on_request(
        &mut self,
        req: &Self::Request,
        snapshot: Option<&Snapshot>,
    ) -> Step<Self::Response>;
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<Self::Response>;
}

impl Protocol for SotwStream {
    type Request = DiscoveryRequest;
    type Response = Outgoing<DiscoveryResponse>;
    const MODE: Mode = Mode::Sotw;
    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn names_in(req: &DiscoveryRequest) -> usize {
        req.resource_names.len()
    }
    fn type_of(resp: &Outgoing<DiscoveryResponse>) -> Option<ResourceType> {
        ResourceType::from_type_url(&resp.type_url)
    }
    fn frame(resp: &Outgoing<DiscoveryResponse>) -> Frame {
        resp.frame()
    }
    fn subscription(&self, t: ResourceType) -> Option<&super::subscription::Subscription> {
        SotwStream::subscription(self, t)
    }
    fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Step<Outgoing<DiscoveryResponse>> {
        SotwStream::on_request(self, req, snapshot)
    }
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<Outgoing<DiscoveryResponse>> {
        SotwStream::on_snapshot(self, snapshot)
    }
}

impl Protocol for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = Outgoing<DeltaDiscoveryResponse>;
    const MODE: Mode = Mode::Delta;
    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }
    fn names_in(req: &DeltaDiscoveryRequest) -> usize {
        req.resource_names_subscribe.len()
            + req.resource_names_unsubscribe.len()
            + req.initial_resource_versions.len()
    }
    fn type_of(resp: &Outgoing<DeltaDiscoveryResponse>) -> Option<ResourceType> {
        ResourceType::from_type_url(&resp.type_url)
    }
    fn frame(resp: &Outgoing<DeltaDiscoveryResponse>) -> Frame {
        resp.frame()
    }
    fn subscription(&self, t: ResourceType) -> Option<&super::subscription::Subscription> {
        DeltaStream::subscription(self, t)
    }
    fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Step<Outgoing<DeltaDiscoveryResponse>> {
        DeltaStream::on_request(self, req, snapshot)
    }
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<Outgoing<DeltaDiscoveryResponse>> {
        DeltaStream::on_snapshot(self, snapshot)
    }
}

struct StreamTask<P: Protocol> {
    protocol: P,
    inbound: Requests<P::Request>,
    /// Responses queue here, within the pending-bytes budget; a proxy that does not read makes the task wait,
    /// and when it resumes it computes from the newest snapshot, so nothing piles up.
    /// Each response framed as soon as it is decided: the message (a copy of every resource it carries) is freed
    /// at once instead of waiting in the queue beside the frame the transport would make of it later.
    outbound: Outbox<Frame>,
    /// Rung when a new generation may give this proxy another snapshot.
    cache: CacheWatch,
    closing: watch::Receiver<bool>,
    registry: ProxyRegistry,
    peer: Peer,
    limits: XdsLimits,
    refused: Arc<LimitCounters>,
    /// Counts this stream on its connection while it runs.
    _connection: Option<StreamGuard>,
    /// Known from the first request on (Envoy sends the node only once per stream): one allocation for the
    /// stream's life (see [`Generation::snapshot_for_stream`]).
    node: Option<Arc<Node>>,
    registration: Option<Registration>,
    snapshot: Option<Arc<Snapshot>>,
    /// How long the proxy is taking to acknowledge the latest change it was pushed.
    convergence: Convergence,
}

/// What a stream decided to send: `started` is when it began working it out; `change`, when the
/// configuration change it answers was accepted (a step that answers a request answers no change).
struct Work<R> {
    step: Step<R>,
    started: Instant,
    change: Option<Instant>,
}

/// The proxy's snapshot changed with a new generation.
struct NewSnapshot {
    /// When the generation's configuration was accepted, if it says.
    accepted_at: Option<Instant>,
}

/// An Envoy that exits or restarts closes its connection without ending the stream first: hyper reports
/// that as an h2 error on the request body. It is how proxies normally leave, not a problem to log.
fn is_disconnect(status: &Status) -> bool {
    let message = status.message();
    [
        "error reading a body from connection",
        "stream no longer needed",
        "connection reset",
        "broken pipe",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// Why a stream task stopped.
enum End {
    ClientClosed,
    ClientError(Status),
    ServerClosed,
    /// The client broke the protocol or went over a limit.
    Rejected(Status),
    /// The pending-bytes budget ran out and this stream had gone longest without reading.
    Evicted,
}

impl<P: Protocol> StreamTask<P> {
    /// Not an `async fn`: one of those stores its `self` argument twice in its future (once as the argument,
    /// once as the local it is moved to), and this future lives as long as the stream.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            let end = self.serve().await;
            let node_id = self.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
            match end {
            End::ClientClosed => tracing::info!(node = node_id, "proxy disconnected"),
            End::ClientError(status) if is_disconnect(&status) => {
                tracing::info!(node = node_id, "proxy disconnected")
            }
            End::ClientError(status) => {
                tracing::info!(node = node_id, error = ?status.message(), "proxy stream ended")
            }
            End::ServerClosed => {
                tracing::debug!(node = node_id, "stream closed by server");
                // Tells the proxy why; it reconnects to whichever server comes next. Never waits: the proxy
                // may have stopped reading.
                self.outbound
                    .finish(Status::unavailable("xDS server shutting down"));
            }
            End::Rejected(status) => {
                tracing::warn!(node = node_id, error = ?status.message(), "stream refused");
                self.outbound.finish(status);
            }
            End::Evicted => tracing::warn!(
                node = node_id,
                "stream ended: responses queued for proxies are over --xds-max-pending-bytes and this proxy \
                 had gone longest without reading"
            ),
        }
            // The generation keeps a proxy's translation only while a stream holds its snapshot: let go of it, then
            // let the generation forget it unless another stream of the same identity still holds it.
            self.snapshot = None;
            if let Some(node) = &self.node {
                self.cache.current().release(node);
            }
            // Dropping self releases the registration and everything else the stream held.
        }
    }

    async fn serve(&mut self) -> End {
        if *self.closing.borrow_and_update() {
            return End::ServerClosed;
        }
        loop {
            // Each branch works out what to send without waiting; only the sending waits, outside the
            // `select!`, so what a branch held (a request) is not part of the idle stream's future.
            let work = tokio::select! {
                // Requests first: an ACK or NACK must be recorded before the next push is decided.
                biased;
                message = self.inbound.message() => self.on_message(message),
                // `closing` only ever changes from false to true.
                _ = self.closing.changed() => Err(End::ServerClosed),
                closed = self.outbound.ended() => Err(match closed {
                    Closed::Gone => End::ClientClosed,
                    Closed::Evicted => End::Evicted,
                }),
                _ = self.cache.rung() => Ok(self.on_ring()),
            };
            let Work {
                step,
                started,
                change,
            } = match work {
                Ok(Some(work)) => work,
                Ok(None) => continue,
                Err(end) => return end,
            };
            // Boxed: a future held only while sending would otherwise be part of every idle stream's task.
            if let Err(end) = Box::pin(self.emit(step, started, change)).await {
                return end;
            }
        }
    }

    /// What to send for a request (or why the stream ends).
    fn on_message(
        &mut self,
        message: Result<Option<P::Request>, Status>,
    ) -> Result<Option<Work<P::Response>>, End> {
        let req = match message {
            Ok(Some(req)) => req,
            Ok(None) => return Err(End::ClientClosed),
            // A request over the size limit is refused from its header, before it is read; the
            // client is told why.
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                return Err(self.refuse(
                    Limit::RequestSize,
                    Status::resource_exhausted(status.message()),
                ))
            }
            Err(status) => return Err(End::ClientError(status)),
        };
        if P::names_in(&req) > self.limits.max_resource_names {
            let message = format!(
                "a request names {} resources, more than the {} allowed",
                P::names_in(&req),
                self.limits.max_resource_names
            );
            return Err(self.refuse(Limit::ResourceNames, Status::invalid_argument(message)));
        }
        if self.node.is_none() {
            let Some(node) = P::node(&req).map(identity_of) else {
                return Err(End::Rejected(Status::invalid_argument(
                    "the first request of a stream must carry the node",
                )));
            };
            // Before it is stored anywhere: the registry, `/debug/proxies` and the generation's
            // translations all hold the node or parts of it.
            let size = prost::Message::encoded_len(&node);
            if size > self.limits.max_node_bytes {
                let message = format!(
                    "the node is {size} bytes encoded, more than the {} allowed",
                    self.limits.max_node_bytes
                );
                return Err(self.refuse(Limit::NodeSize, Status::invalid_argument(message)));
            }
            // Before the stream is registered or served: a refused node leaves no trace.
            if let Err(denied) = self.peer.authorize(&node) {
                return Err(End::Rejected(denied));
            }
            self.identify(node);
        }
        let started = Instant::now();
        let step = self.protocol.on_request(&req, self.snapshot.as_deref());
        // Delta subscriptions add up over requests: bound what one stream holds, not only each request.
        let subscribed = ResourceType::ALL
            .into_iter()
            .filter_map(|t| self.protocol.subscription(t))
            .map(|sub| sub.names.explicit_len())
            .max()
            .unwrap_or(0);
        if subscribed > self.limits.max_resource_names {
            let message = format!(
                "the stream subscribes to {subscribed} names of one type, more than the {} allowed",
                self.limits.max_resource_names
            );
            return Err(self.refuse(Limit::ResourceNames, Status::invalid_argument(message)));
        }
        Ok(Some(Work {
            step,
            started,
            change: None,
        }))
    }

    /// What to send when a new generation may have given this proxy another snapshot.
    fn on_ring(&mut self) -> Option<Work<P::Response>> {
        let NewSnapshot { accepted_at } = self.refresh_snapshot()?;
        let snapshot = self.snapshot.clone()?;
        let started = Instant::now();
        let step = self.protocol.on_snapshot(&snapshot);
        Some(Work {
            step,
            started,
            change: accepted_at,
        })
    }

    /// Ends the stream because the client went over a limit: counted, and the client told why.
    fn refuse(&self, limit: Limit, status: Status) -> End {
        self.refused.refused(limit);
        End::Rejected(status)
    }

    fn identify(&mut self, node: Node) {
        tracing::info!(node = ?node.id, cluster = ?node.cluster, mode = ?P::MODE, "proxy connected");
        // One allocation for the stream and its registry entry.
        let node = Arc::new(node);
        self.registration = Some(self.registry.register(node.clone(), P::MODE));
        self.node = Some(node);
        self.refresh_snapshot();
    }

    /// Looks up this proxy's snapshot in the current generation; `Some` if it changed.
    fn refresh_snapshot(&mut self) -> Option<NewSnapshot> {
        let Some(node) = &self.node else {
            return None;
        };
        let generation = self.cache.current();
        let next = match generation.snapshot_for_stream(node) {
            Ok(snapshot) => {
                self.set_identity_error(None);
                Some(snapshot)
            }
            Err(error) => {
                tracing::warn!(node = ?node.id, ?error, "cannot serve proxy");
                self.set_identity_error(Some(error));
                None
            }
        };
        let changed = match (&self.snapshot, &next) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        self.cache.hold(&generation, next.as_deref());
        self.snapshot = next;
        changed.then(|| NewSnapshot {
            accepted_at: generation.accepted_at(),
        })
    }

    fn set_identity_error(&self, error: Option<String>) {
        if let Some(registration) = &self.registration {
            registration.set_identity_error(error);
        }
    }

    /// Records the events and sends the responses, unless the proxy is gone or the server closes while the
    /// proxy is not reading. `started`: when the stream began working out this step; `change`: when the
    /// configuration change it answers was accepted (a step that answers a request answers no change).
    async fn emit(
        &mut self,
        step: Step<P::Response>,
        started: Instant,
        change: Option<Instant>,
    ) -> Result<(), End> {
        let node = self.node.as_ref().map(|n| n.id.as_str()).unwrap_or("");
        for event in &step.events {
            log_event(node, event);
        }
        if let Some(registration) = &self.registration {
            registration.apply(&step.events);
        }
        let histograms = &self.registry.counters().histograms;
        if let Some(since) = self.convergence.record(change, &step.events) {
            histograms.converged(since.elapsed());
        }
        for response in step.responses {
            let t = P::type_of(&response);
            let frame = P::frame(&response);
            drop(response);
            let bytes = frame.message_len();
            // A large resource's shared entry is counted once however many streams queue it: counted per
            // stream, it would evict proxies merely slow to read it (`outbox.rs`).
            let charge = Charge {
                own: frame.owned_len(),
                shared: frame.shared_chunks().to_vec(),
            };
            tokio::select! {
                sent = self.outbound.send(frame, charge) => match sent {
                    Ok(()) => {
                        if let Some(t) = t {
                            histograms.pushed(t, started.elapsed(), bytes);
                        }
                    }
                    Err(Closed::Gone) => return Err(End::ClientClosed),
                    Err(Closed::Evicted) => return Err(End::Evicted),
                },
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

/// Everything a client chose (node id, versions, messages, type URLs) is logged as a `Debug` field, quoted with
/// its control characters escaped, so no input can start a line of its own and forge a log entry.
fn log_event(node: &str, event: &Event) {
    match event {
        Event::Nacked { type_, nack } => tracing::warn!(
            node, type_ = %type_, rejected = %nack.rejected_version, kept = ?nack.kept_version,
            message = ?nack.message, "proxy rejected config"
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
            tracing::debug!(node, ?type_url, reason, "ignored request")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::generation::NoConfig;
    use super::*;

    /// Every connected proxy's task holds its future for the stream's life: what it holds only while working
    /// out or sending a response (the request, the step, the send) must not be part of it.
    #[test]
    fn an_idle_stream_task_is_small() {
        let server = AdsServer::new(Cache::new(Arc::new(NoConfig)), ProxyRegistry::default());
        let (delta, _responses) = server.stream_task(
            Requests::new(tonic::body::Body::empty(), 1 << 20),
            DeltaStream::default(),
            Peer::Open,
            None,
        );
        let task = std::mem::size_of_val(&delta);
        let future = std::mem::size_of_val(&delta.run());
        // The future holds the task once (not twice, as an `async fn` taking it would) and little beside it:
        // it was 5,560 bytes (debug build) for a 1,824-byte task.
        assert!(
            future <= task + 1024,
            "the stream's future is {future} bytes, its task {task}"
        );
    }
}
