//! The clients' gRPC codec: requests encoded by prost; each response kept as the bytes it arrived in beside
//! its decoded message.
//!
//! The run records what Switchyard sent so that the floor can replay it. Re-encoding every decoded response
//! for that (a 364 KB route configuration per proxy per change at 1,000 unscoped proxies) cost the clients
//! about a second of CPU per change on the two cores they share with the server, in Switchyard's run only,
//! and so counted against Switchyard. The bytes tonic hands the decoder are split off its buffer without a
//! copy: keeping them costs a reference count, and both runs' clients do the same work.

use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

pub const SOTW: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
pub const DELTA: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// A response as it arrived and as decoded.
pub struct Received<M> {
    pub raw: Bytes,
    pub message: M,
}

/// Opens the bidirectional ADS call at `path`, sending `requests`.
pub async fn open<Req, Resp>(
    channel: Channel,
    path: &'static str,
    requests: impl tokio_stream::Stream<Item = Req> + Send + 'static,
) -> Result<Streaming<Received<Resp>>, Status>
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
{
    // A CDS of thousands of clusters is far over tonic's default 4 MB limit; Envoy has none.
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
    let codec = RawCodec::<Req, Resp>(PhantomData);
    let response = grpc
        .streaming(
            tonic::Request::new(requests),
            PathAndQuery::from_static(path),
            codec,
        )
        .await?;
    Ok(response.into_inner())
}

struct RawCodec<Req, Resp>(PhantomData<fn(Req) -> Resp>);

impl<Req, Resp> Codec for RawCodec<Req, Resp>
where
    Req: Message + Send + 'static,
    Resp: Message + Default + Send + 'static,
{
    type Encode = Req;
    type Decode = Received<Resp>;
    type Encoder = RequestEncoder<Req>;
    type Decoder = ResponseDecoder<Resp>;

    fn encoder(&mut self) -> Self::Encoder {
        RequestEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder(PhantomData)
    }
}

struct RequestEncoder<Req>(PhantomData<fn(Req)>);

impl<Req: Message> Encoder for RequestEncoder<Req> {
    type Item = Req;
    type Error = Status;

    fn encode(&mut self, item: Req, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encode request: {e}")))
    }
}

struct ResponseDecoder<Resp>(PhantomData<fn() -> Resp>);

impl<Resp: Message + Default> Decoder for ResponseDecoder<Resp> {
    type Item = Received<Resp>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Received<Resp>>, Status> {
        // The whole message, split off tonic's buffer (no copy).
        let raw = src.copy_to_bytes(src.remaining());
        let message = Resp::decode(raw.clone())
            .map_err(|e| Status::internal(format!("decode response: {e}")))?;
        Ok(Some(Received { raw, message }))
    }
}
