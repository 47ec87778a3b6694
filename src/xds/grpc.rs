//! ADS on the wire: the gRPC service that tonic's server routes to, with each response framed into an
//! allocation of exactly its own size.
//!
//! Why not the generated `AggregatedDiscoveryServiceServer`: tonic encodes every message of a response stream
//! into one buffer that lives as long as the stream and never shrinks, so each connected proxy kept an
//! allocation as large as the largest response it was ever sent (a full CDS or route configuration: 128 KB per
//! proxy on a 50-service mesh, most of what an idle proxy cost). Here a response is encoded into a buffer of
//! its exact size, which h2 frees once written; an idle stream holds no encoded bytes at all. Requests are
//! decoded by tonic as before, and the handlers are the same [`AggregatedDiscoveryService`] methods.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, SERVICE_NAME,
};
use http_body::Frame;
use prost::Message;
use tokio_stream::Stream;
use tonic::body::Body;
use tonic::codec::{BufferSettings, Streaming};
use tonic::codegen::{http, BoxFuture, Bytes, Service, StdError};
use tonic::metadata::GRPC_CONTENT_TYPE;
use tonic::server::NamedService;
use tonic::Status;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Requests are small (a type, a nonce, resource names): start the decode buffer small; it grows to the
/// largest request if it must.
const REQUEST_BUFFER: usize = 1024;

/// tonic's default: how much a decoder buffers before it yields.
const YIELD: usize = 32 * 1024;

/// gRPC's length-prefixed message header: a compression flag and a big-endian length.
const FRAME_HEADER: usize = 5;

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
    T: AggregatedDiscoveryService + Clone,
    T::StreamAggregatedResourcesStream: Unpin,
    T::DeltaAggregatedResourcesStream: Unpin,
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
        let (server, max) = (self.handlers.clone(), self.max_request);
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let response = server.stream_aggregated_resources(decoded(req, max)).await;
                Ok(framed(response))
            }),
            DELTA_PATH => Box::pin(async move {
                let response = server.delta_aggregated_resources(decoded(req, max)).await;
                Ok(framed(response))
            }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

/// The request stream, decoded by tonic, with the connection's extensions (the TLS peer's certificates).
fn decoded<M, B>(req: http::Request<B>, max_request: usize) -> tonic::Request<Streaming<M>>
where
    M: Message + Default + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    let (parts, body) = req.into_parts();
    let decoder =
        tonic_prost::ProstCodec::<M, M>::raw_decoder(BufferSettings::new(REQUEST_BUFFER, YIELD));
    let stream = Streaming::new_request(decoder, body, None, Some(max_request));
    tonic::Request::from_http(http::Request::from_parts(parts, stream))
}

/// The HTTP response of a stream handler: each message one exact-size data frame, then the status trailers.
fn framed<M, S>(response: Result<tonic::Response<S>, Status>) -> http::Response<Body>
where
    M: Message + 'static,
    S: Stream<Item = Result<M, Status>> + Unpin + Send + 'static,
{
    let messages = match response {
        Ok(response) => response.into_inner(),
        Err(status) => return status.into_http(),
    };
    let mut http = http::Response::new(Body::new(Framed {
        messages,
        ended: false,
    }));
    http.headers_mut()
        .insert(http::header::CONTENT_TYPE, GRPC_CONTENT_TYPE);
    http
}

struct Framed<S> {
    messages: S,
    ended: bool,
}

impl<M, S> http_body::Body for Framed<S>
where
    M: Message,
    S: Stream<Item = Result<M, Status>> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let status = match ready!(Pin::new(&mut self.messages).poll_next(cx)) {
            Some(Ok(message)) => return Poll::Ready(Some(Ok(Frame::data(encode(&message))))),
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.ended = true;
        let mut trailers = http::HeaderMap::new();
        // Only fails for a message that is not a valid header value, which `add_header` percent-encodes.
        let _ = status.add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// One gRPC message, uncompressed, in a buffer of exactly its size.
fn encode<M: Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut buf = Vec::with_capacity(FRAME_HEADER + len);
    buf.push(0);
    // A single xDS response is far below 4 GiB: Envoy refuses anything over its own limits long before.
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message.encode_raw(&mut buf);
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;

    #[test]
    fn a_frame_is_the_header_and_the_message_in_one_exact_allocation() {
        let response = DiscoveryResponse {
            version_info: "v1".into(),
            nonce: "7".into(),
            ..Default::default()
        };
        let frame = encode(&response);
        let body = response.encode_to_vec();
        assert_eq!(frame.len(), FRAME_HEADER + body.len());
        assert_eq!(frame[0], 0, "uncompressed");
        assert_eq!(&frame[1..5], &(body.len() as u32).to_be_bytes());
        assert_eq!(&frame[5..], &body[..]);
    }
}
