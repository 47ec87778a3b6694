//! ADS requests off the wire: gRPC's length-prefixed messages decoded from an HTTP/2 request body, holding no
//! buffer between messages.
//!
//! Why not tonic's `Streaming`: its decode buffer grows to the largest request the stream ever carried and is
//! kept for the stream's life. A proxy's largest request is its first EDS or RDS subscription (every cluster
//! name: 50 KB on a 500-service mesh) or its first request at all (a real Envoy's node lists every extension
//! it was built with), so every connected proxy kept that much for nothing: about 100 KB per idle proxy at 500
//! services, the largest part of what one costs. Here a message that arrives whole in one data frame is
//! decoded from the frame itself, and one split across frames is gathered in a buffer released as soon as
//! the message is decoded.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body as _;
use prost::Message;
use tonic::body::Body;
use tonic::{Code, Status};

/// gRPC's length-prefixed message header: a compression flag and a big-endian length.
const HEADER: usize = 5;

/// The request messages of one stream, in order.
pub struct Requests<M> {
    body: Body,
    /// The undecoded bytes: the rest of the last data frame, or a message gathered across frames. Empty
    /// (and holding no allocation) between messages unless the client sent more than one at once.
    pending: Pending,
    /// The largest message accepted; a larger one is an `OutOfRange` error before any of it is buffered.
    max_message: usize,
    _message: PhantomData<fn() -> M>,
}

/// Bytes received and not yet decoded.
enum Pending {
    /// A data frame as h2 handed it over (no copy), possibly holding several messages.
    Frame(Bytes),
    /// A message split across frames, gathered here until it is whole.
    Gathering(BytesMut),
}

impl Pending {
    fn as_slice(&self) -> &[u8] {
        match self {
            Pending::Frame(bytes) => bytes,
            Pending::Gathering(buf) => buf,
        }
    }

    fn consume(&mut self, n: usize) {
        let emptied = match self {
            Pending::Frame(bytes) => {
                bytes.advance(n);
                bytes.is_empty()
            }
            Pending::Gathering(buf) => {
                buf.advance(n);
                buf.is_empty()
            }
        };
        if emptied {
            // Let go of the allocation even though nothing is left of it: a gathering buffer was as large as
            // the message, and an emptied frame still pins the part of h2's read buffer it was cut from.
            *self = Pending::Frame(Bytes::new());
        }
    }

    fn append(&mut self, data: Bytes) {
        match self {
            Pending::Frame(bytes) if bytes.is_empty() => *bytes = data,
            Pending::Frame(bytes) => {
                let mut buf = BytesMut::with_capacity(bytes.len() + data.len());
                buf.extend_from_slice(bytes);
                buf.extend_from_slice(&data);
                *self = Pending::Gathering(buf);
            }
            Pending::Gathering(buf) => buf.extend_from_slice(&data),
        }
    }
}

impl<M: Message + Default> Requests<M> {
    pub fn new(body: Body, max_message: usize) -> Requests<M> {
        Requests {
            body,
            pending: Pending::Frame(Bytes::new()),
            max_message,
            _message: PhantomData,
        }
    }

    /// The next request; `None` once the client has closed its side of the stream (or cancelled it).
    /// Cancel-safe: a frame is taken from the body only when it is stored here.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<M>, Status>> {
        loop {
            if let Some(message) = self.decode_pending()? {
                return Poll::Ready(Ok(Some(message)));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers end a request stream and carry nothing ADS uses.
                    if let Ok(data) = frame.into_data() {
                        self.pending.append(data);
                    }
                }
                Some(Err(status)) if status.code() == Code::Cancelled => {
                    return Poll::Ready(Ok(None))
                }
                Some(Err(status)) => return Poll::Ready(Err(status)),
                None if self.pending.as_slice().is_empty() => return Poll::Ready(Ok(None)),
                None => {
                    return Poll::Ready(Err(Status::internal(
                        "the request stream ended inside a message",
                    )))
                }
            }
        }
    }

    /// A whole message from what is pending, if there is one.
    fn decode_pending(&mut self) -> Result<Option<M>, Status> {
        let bytes = self.pending.as_slice();
        let Some(header) = bytes.get(..HEADER) else {
            return Ok(None);
        };
        if header[0] != 0 {
            // No grpc-encoding is accepted, so a compressed message is a protocol error (gRPC: INTERNAL).
            return Err(Status::internal(
                "protocol error: a compressed message, and no compression was negotiated",
            ));
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > self.max_message {
            return Err(Status::out_of_range(format!(
                "a request of {len} bytes, more than the {} allowed",
                self.max_message
            )));
        }
        // The buffer grows with what arrives, not with what the header announces: a client that announces
        // a large message and sends nothing more makes the server hold nothing for it.
        let Some(body) = bytes.get(HEADER..HEADER + len) else {
            return Ok(None);
        };
        let message = M::decode(body)
            .map_err(|e| Status::internal(format!("a request that is not valid protobuf: {e}")))?;
        self.pending.consume(HEADER + len);
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use http_body::Frame;

    use super::*;

    /// A request body that yields the given frames, then ends (or fails).
    struct Frames {
        frames: VecDeque<Result<Frame<Bytes>, Status>>,
    }

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            Poll::Ready(self.frames.pop_front())
        }
    }

    fn requests(
        frames: impl IntoIterator<Item = Result<Frame<Bytes>, Status>>,
    ) -> Requests<DiscoveryRequest> {
        let body = Frames {
            frames: frames.into_iter().collect(),
        };
        Requests::new(Body::new(body), 1 << 20)
    }

    fn request(names: usize) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment".into(),
            resource_names: (0..names)
                .map(|i| format!("outbound|9080|v1|svc-{i:05}.default.svc.cluster.local"))
                .collect(),
            ..Default::default()
        }
    }

    fn framed(message: &DiscoveryRequest) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn data(bytes: &[u8]) -> Result<Frame<Bytes>, Status> {
        Ok(Frame::data(Bytes::copy_from_slice(bytes)))
    }

    #[tokio::test]
    async fn messages_whole_split_and_several_to_a_frame_decode_in_order() {
        let (a, b, c) = (request(1), request(2_000), request(3));
        let big = framed(&b);
        let mut two = framed(&a);
        two.extend_from_slice(&big[..7]);
        // `a` and the start of `b` in one frame, `b` across 16 KB frames (h2's default), its end with `c`.
        let mut frames = vec![data(&two)];
        let rest = &big[7..];
        let (middle, end) = rest.split_at(rest.len() - 3);
        frames.extend(middle.chunks(16 << 10).map(data));
        let mut last = end.to_vec();
        last.extend_from_slice(&framed(&c));
        frames.push(data(&last));
        let mut stream = requests(frames);
        assert_eq!(stream.message().await.unwrap(), Some(a));
        assert_eq!(stream.message().await.unwrap(), Some(b));
        assert_eq!(stream.message().await.unwrap(), Some(c));
        assert_eq!(stream.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn nothing_is_held_between_messages() {
        let big = framed(&request(2_000));
        assert!(big.len() > 100 << 10);
        let mut stream = requests(big.chunks(16 << 10).map(data));
        stream.message().await.unwrap().expect("the request");
        match &stream.pending {
            Pending::Frame(bytes) => assert!(bytes.is_empty()),
            Pending::Gathering(buf) => panic!("kept a {} byte buffer", buf.capacity()),
        }
        // A frame holding exactly one message: the emptied frame must not keep its allocation either.
        let whole = Bytes::from(framed(&request(10)));
        let mut stream = requests([Ok(Frame::data(whole.clone()))]);
        stream.message().await.unwrap().expect("the request");
        assert!(
            whole.is_unique(),
            "the decoder still holds a reference to the frame it read"
        );
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_from_its_header() {
        let big = framed(&request(100));
        let body = Frames {
            frames: [data(&big[..HEADER])].into_iter().collect(),
        };
        let mut stream = Requests::<DiscoveryRequest>::new(Body::new(body), 1024);
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(status.message().contains("1024 allowed"), "{status:?}");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_message_is_an_error_and_a_cancelled_one_just_ends() {
        let whole = framed(&request(10));
        let status = requests([data(&whole[..whole.len() - 1])])
            .message()
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        let cancelled = requests([data(&whole), Err(Status::cancelled("gone"))]);
        let mut cancelled = cancelled;
        assert!(cancelled.message().await.unwrap().is_some());
        assert_eq!(cancelled.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn compressed_and_malformed_messages_are_errors() {
        let mut compressed = framed(&request(1));
        compressed[0] = 1;
        let status = requests([data(&compressed)]).message().await.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        let garbage = [0, 0, 0, 0, 3, 0xff, 0xff, 0xff];
        let status = requests([data(&garbage)]).message().await.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
    }
}
