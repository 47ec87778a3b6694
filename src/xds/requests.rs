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
    /// The largest message accepted; a larger one is an `OutOfRange` error as soon as its header arrives, with
    /// no more of it buffered than the frame that carried the header.
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

    /// The size of the pending message, header included, once its header is here.
    fn message_size(&self) -> Option<usize> {
        let header = self.as_slice().get(..HEADER)?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        Some(HEADER + len)
    }

    fn consume(&mut self, n: usize) {
        let rest = match self {
            Pending::Frame(bytes) => {
                bytes.advance(n);
                if !bytes.is_empty() {
                    return;
                }
                // An emptied frame still pins the part of h2's read buffer it was cut from.
                Bytes::new()
            }
            // The gathering buffer was as large as the message; what follows it (the start of the next one,
            // at most a frame) moves to an allocation of its own size.
            Pending::Gathering(buf) => {
                buf.advance(n);
                Bytes::copy_from_slice(buf)
            }
        };
        *self = Pending::Frame(rest);
    }

    fn append(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let held = match self {
            Pending::Frame(bytes) if bytes.is_empty() => {
                *bytes = data;
                return;
            }
            Pending::Gathering(buf) if buf.capacity() - buf.len() >= data.len() => {
                buf.extend_from_slice(&data);
                return;
            }
            Pending::Frame(bytes) => (bytes.len(), bytes.len()),
            Pending::Gathering(buf) => (buf.len(), buf.capacity()),
        };
        let capacity = grown_capacity(held, data.len(), self.message_size());
        let mut buf = BytesMut::with_capacity(capacity);
        buf.extend_from_slice(self.as_slice());
        buf.extend_from_slice(&data);
        *self = Pending::Gathering(buf);
    }
}

/// The next capacity of a gathering buffer holding `(len, capacity)` that must take `incoming` more bytes:
/// doubled, as a growing buffer would, but never past the message its header announced (unless one frame
/// already carries more), so a message near the size limit costs its size, not twice it.
fn grown_capacity(
    (len, capacity): (usize, usize),
    incoming: usize,
    message: Option<usize>,
) -> usize {
    let needed = len + incoming;
    let doubled = needed.max(2 * capacity);
    match message {
        Some(message) => doubled.min(needed.max(message)),
        None => doubled,
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
        let Some(size) = self.pending.message_size() else {
            return Ok(None);
        };
        let bytes = self.pending.as_slice();
        if bytes[0] != 0 {
            // No grpc-encoding is accepted, so a compressed message is a protocol error (gRPC: INTERNAL).
            return Err(Status::internal(
                "protocol error: a compressed message, and no compression was negotiated",
            ));
        }
        let len = size - HEADER;
        if len > self.max_message {
            return Err(Status::out_of_range(format!(
                "a request of {len} bytes, more than the {} allowed",
                self.max_message
            )));
        }
        // The buffer grows with what arrives, not with what the header announces: a client that announces
        // a large message and sends nothing more makes the server hold nothing for it.
        let Some(body) = bytes.get(HEADER..size) else {
            return Ok(None);
        };
        let message = M::decode(body)
            .map_err(|e| Status::internal(format!("a request that is not valid protobuf: {e}")))?;
        self.pending.consume(size);
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use http_body::Frame;

    use super::*;

    /// What a test body does when polled: yield a frame or an error, or not be ready yet (once).
    enum Step {
        Yield(Result<Frame<Bytes>, Status>),
        NotReady,
    }

    /// A request body that takes the given steps, then ends.
    struct Frames {
        steps: VecDeque<Step>,
    }

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            match self.steps.pop_front() {
                Some(Step::Yield(frame)) => Poll::Ready(Some(frame)),
                Some(Step::NotReady) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    const LIMIT: usize = 1 << 20;

    fn requests(steps: impl IntoIterator<Item = Step>) -> Requests<DiscoveryRequest> {
        let body = Frames {
            steps: steps.into_iter().collect(),
        };
        Requests::new(Body::new(body), LIMIT)
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

    fn data(bytes: &[u8]) -> Step {
        Step::Yield(Ok(Frame::data(Bytes::copy_from_slice(bytes))))
    }

    /// `message` cut into h2-sized (16 KB) data frames.
    fn frames_of(message: &[u8]) -> impl Iterator<Item = Step> + '_ {
        message.chunks(16 << 10).map(data)
    }

    #[tokio::test]
    async fn messages_whole_split_empty_and_several_to_a_frame_decode_in_order() {
        let (a, empty, b, c) = (
            request(1),
            DiscoveryRequest::default(),
            request(2_000),
            request(3),
        );
        let big = framed(&b);
        // `a`, an empty message and the first 3 bytes of `b`'s header in one frame; `b` across 16 KB frames;
        // its last bytes with `c`; then the trailers that end a request stream.
        let mut first = framed(&a);
        first.extend_from_slice(&framed(&empty));
        first.extend_from_slice(&big[..3]);
        let (middle, end) = big[3..].split_at(big.len() - 6);
        let mut last = end.to_vec();
        last.extend_from_slice(&framed(&c));
        let steps = std::iter::once(data(&first))
            .chain(frames_of(middle))
            .chain([data(&last)])
            .chain([Step::Yield(Ok(Frame::trailers(Default::default())))]);
        let mut stream = requests(steps);
        assert_eq!(stream.message().await.unwrap(), Some(a));
        assert_eq!(stream.message().await.unwrap(), Some(empty));
        assert_eq!(stream.message().await.unwrap(), Some(b));
        assert_eq!(stream.message().await.unwrap(), Some(c));
        assert_eq!(stream.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_message_is_neither_lost_nor_repeated_when_waiting_for_it_is_dropped() {
        let (a, b) = (request(500), request(2));
        let whole = framed(&a);
        let (head, tail) = whole.split_at(whole.len() / 2);
        let mut stream = requests([data(head), Step::NotReady, data(tail), data(&framed(&b))]);
        // As `select!` does when another branch wins: the wait is dropped with half a message read.
        assert!(futures::poll!(Box::pin(stream.message())).is_pending());
        assert_eq!(stream.message().await.unwrap(), Some(a));
        assert_eq!(stream.message().await.unwrap(), Some(b));
        assert_eq!(stream.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn nothing_is_held_between_messages() {
        let big = framed(&request(2_000));
        assert!(big.len() > 100 << 10);
        let mut stream = requests(frames_of(&big));
        stream.message().await.unwrap().expect("the request");
        match &stream.pending {
            Pending::Frame(bytes) => assert!(bytes.is_empty()),
            Pending::Gathering(buf) => panic!("kept a {} byte buffer", buf.capacity()),
        }
        // The start of the next message in the frame that ended a gathered one: it alone is kept.
        let mut with_next = big.clone();
        with_next.extend_from_slice(&[0, 0, 0]);
        let mut stream = requests(frames_of(&with_next));
        stream.message().await.unwrap().expect("the request");
        match &stream.pending {
            Pending::Frame(bytes) => assert_eq!(bytes.len(), 3),
            Pending::Gathering(buf) => panic!("kept a {} byte buffer", buf.capacity()),
        }
        // A frame holding exactly one message: the emptied frame must not keep its allocation either.
        let whole = Bytes::from(framed(&request(10)));
        let mut stream = requests([Step::Yield(Ok(Frame::data(whole.clone())))]);
        stream.message().await.unwrap().expect("the request");
        assert!(
            whole.is_unique(),
            "the decoder still holds a reference to the frame it read"
        );
    }

    #[test]
    fn a_gathering_buffer_doubles_but_never_past_the_announced_message() {
        let kb = 1 << 10;
        // 80 KB of a 100 KB message held, 16 KB more arriving: the message's size, not 160 KB.
        assert_eq!(
            grown_capacity((80 * kb, 80 * kb), 16 * kb, Some(100 * kb)),
            100 * kb
        );
        // A frame that carries more than the rest of the message is taken whole.
        assert_eq!(
            grown_capacity((96 * kb, 96 * kb), 16 * kb, Some(97 * kb)),
            112 * kb
        );
        // Before the header is known, or far from the message's end: doubled.
        assert_eq!(grown_capacity((3, 3), 16 * kb, None), 16 * kb + 3);
        assert_eq!(
            grown_capacity((32 * kb, 32 * kb), 16 * kb, Some(4096 * kb)),
            64 * kb
        );
    }

    #[tokio::test]
    async fn a_message_at_the_limit_is_read_and_one_past_it_refused_from_its_header() {
        let message = framed(&request(100));
        let len = message.len() - HEADER;
        let at_limit = |limit: usize, steps: Vec<Step>| {
            let body = Frames {
                steps: steps.into(),
            };
            Requests::<DiscoveryRequest>::new(Body::new(body), limit)
        };
        let read = at_limit(len, frames_of(&message).collect()).message().await;
        assert_eq!(read.unwrap(), Some(request(100)));
        // Only the header ever arrives: refused all the same.
        let status = at_limit(len - 1, vec![data(&message[..HEADER])])
            .message()
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        assert!(
            status.message().contains(&format!("{} allowed", len - 1)),
            "{status:?}"
        );
    }

    #[tokio::test]
    async fn a_cut_stream_is_an_error_a_cancelled_one_ends_and_other_errors_pass_through() {
        let whole = framed(&request(10));
        let status = requests([data(&whole[..whole.len() - 1])])
            .message()
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        let mut cancelled = requests([data(&whole), Step::Yield(Err(Status::cancelled("gone")))]);
        assert!(cancelled.message().await.unwrap().is_some());
        assert_eq!(cancelled.message().await.unwrap(), None);
        let reset = Status::unknown("error reading a body from connection: connection reset");
        let status = requests([Step::Yield(Err(reset))])
            .message()
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unknown, "{status:?}");
        assert!(status.message().contains("connection reset"), "{status:?}");
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
