//! ADS on the wire: the gRPC service that tonic's server routes to, each response written as the chunks it
//! was framed in (`super::frame`).
//!
//! Why not the generated `AggregatedDiscoveryServiceServer`: tonic encodes every message of a response stream
//! into one buffer that lives as long as the stream and never shrinks, so each connected proxy kept an
//! allocation as large as the largest response it was ever sent (a full CDS or route configuration: 128 KB per
//! proxy on a 50-service mesh, most of what an idle proxy cost). Here a response is framed into chunks of
//! their exact size (a large resource's chunk shared with the generation), which h2 lets go once written; an
//! idle stream holds no encoded bytes at all. Requests are
//! decoded by [`Requests`], which for the same reason holds no buffer between messages.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::SERVICE_NAME;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use http_body::Frame as BodyFrame;
use prost::Message;
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Bytes, Service, StdError};
use tonic::metadata::GRPC_CONTENT_TYPE;
use tonic::server::NamedService;
use tonic::Status;

use super::frame::Frame;
use super::requests::Requests;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// What serves the two ADS streams: each request stream in, its response stream out, each response already
/// a [`Frame`] (a `DiscoveryResponse` on the SotW stream, a `DeltaDiscoveryResponse` on the Delta one): a
/// queued response is its chunks, not a message holding a copy of every resource it carries.
pub trait AdsHandlers: Clone + Send + 'static {
    type SotwResponses: Stream<Item = Result<Frame, Status>> + Unpin + Send + 'static;
    type DeltaResponses: Stream<Item = Result<Frame, Status>> + Unpin + Send + 'static;

    fn sotw(
        &self,
        request: tonic::Request<Requests<DiscoveryRequest>>,
    ) -> Result<Self::SotwResponses, Status>;

    fn delta(
        &self,
        request: tonic::Request<Requests<DeltaDiscoveryRequest>>,
    ) -> Result<Self::DeltaResponses, Status>;
}

/// The ADS service as tonic's server sees it, around the handlers of `T`.
#[derive(Clone, Debug)]
pub struct AdsService<T> {
    handlers: T,
    /// The largest request decoded; a larger one ends its stream with `OutOfRange`, which the handlers turn
    /// into a status the client sees.
    max_request: usize,
}

impl<T> AdsService<T> {
    pub fn new(handlers: T, max_request: usize) -> AdsService<T> {
        AdsService {
            handlers,
            max_request,
        }
    }
}

impl<T> NamedService for AdsService<T> {
    const NAME: &'static str = SERVICE_NAME;
}

impl<T, B> Service<http::Request<B>> for AdsService<T>
where
    T: AdsHandlers,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let max = self.max_request;
        // The handlers only spawn the stream's task: nothing to wait for.
        let response = match req.uri().path() {
            SOTW_PATH => framed(self.handlers.sotw(decoded(req, max))),
            DELTA_PATH => framed(self.handlers.delta(decoded(req, max))),
            _ => Status::unimplemented("").into_http(),
        };
        Box::pin(std::future::ready(Ok(response)))
    }
}

/// The request stream with the connection's extensions (the peer's address, its TLS certificates).
fn decoded<M, B>(req: http::Request<B>, max_request: usize) -> tonic::Request<Requests<M>>
where
    M: Message + Default + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    let (parts, body) = req.into_parts();
    let stream = Requests::new(Body::new(body), max_request);
    tonic::Request::from_http(http::Request::from_parts(parts, stream))
}

/// The HTTP response of a stream handler: each framed message's chunks as data frames, then the status
/// trailers.
fn framed<S>(response: Result<S, Status>) -> http::Response<Body>
where
    S: Stream<Item = Result<Frame, Status>> + Unpin + Send + 'static,
{
    let messages = match response {
        Ok(messages) => messages,
        Err(status) => return status.into_http(),
    };
    let mut http = http::Response::new(Body::new(Framed {
        messages,
        chunks: Vec::new().into_iter(),
        ended: false,
    }));
    http.headers_mut()
        .insert(http::header::CONTENT_TYPE, GRPC_CONTENT_TYPE);
    http
}

struct Framed<S> {
    messages: S,
    /// What is left to write of the message being written.
    chunks: std::vec::IntoIter<Bytes>,
    ended: bool,
}

impl<S> http_body::Body for Framed<S>
where
    S: Stream<Item = Result<Frame, Status>> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Status>>> {
        let status = loop {
            if let Some(chunk) = self.chunks.next() {
                return Poll::Ready(Some(Ok(BodyFrame::data(chunk))));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.messages).poll_next(cx)) {
                Some(Ok(frame)) => self.chunks = frame.into_chunks().into_iter(),
                Some(Err(status)) => break status,
                None => break Status::ok(""),
            }
        };
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        // Only fails for a message that is not a valid header value, which `add_header` percent-encodes.
        let _ = status.add_header(&mut trailers);
        Poll::Ready(Some(Ok(BodyFrame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
