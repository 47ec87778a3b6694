//! A response as a stream decided it: the message's own fields (version, nonce, type, removed names), and
//! the encoded resources it carries, shared with the generation rather than copied into the message. It is
//! framed for the wire by [`Outgoing::frame`]: the message's own fields, then one `resources` entry per
//! resource (a protobuf message's fields may come in any order, and a repeated field's entries are read in
//! the order they come), a large resource's entry encoded once and shared by every response (`super::frame`).

use std::ops::Deref;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource,
};
use prost::encoding::{message, string};
use prost::Message;

use super::frame::{field_len, put_field_head, Frame, FrameWriter, SHARED_ENTRY_MIN};
use super::snapshot::Encoded;

/// The field number of `resources` in `DiscoveryResponse` and in `DeltaDiscoveryResponse`.
const RESOURCES: u32 = 2;

/// A response: `message` without resources, and the resources it carries. `outgoing.resources` is this
/// list; the message's own `resources` field stays empty (see [`Outgoing::to_message`]).
#[derive(Debug, Clone)]
pub struct Outgoing<M> {
    pub message: M,
    pub resources: Vec<Arc<Encoded>>,
}

impl<M> Deref for Outgoing<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.message
    }
}

/// How a resource is carried in one kind of response.
trait Entry {
    /// The length of the entry's content (without its field key and length).
    fn content_len(r: &Encoded) -> usize;
    fn put_content(r: &Encoded, buf: &mut BytesMut);
    /// Where a large resource keeps its entry, once encoded.
    fn shared(r: &Encoded) -> &std::sync::OnceLock<Bytes>;
}

/// SotW: the resource's `Any`.
struct SotwEntry;

impl Entry for SotwEntry {
    fn content_len(r: &Encoded) -> usize {
        r.any.encoded_len()
    }
    fn put_content(r: &Encoded, buf: &mut BytesMut) {
        r.any.encode_raw(buf);
    }
    fn shared(r: &Encoded) -> &std::sync::OnceLock<Bytes> {
        &r.shared_entries.sotw
    }
}

/// Delta: a `Resource` with the name, the version and the `Any`.
struct DeltaEntry;

impl Entry for DeltaEntry {
    fn content_len(r: &Encoded) -> usize {
        string_len(1, &r.version) + message::encoded_len(2, &r.any) + string_len(3, &r.name)
    }
    fn put_content(r: &Encoded, buf: &mut BytesMut) {
        if !r.version.is_empty() {
            string::encode(1, &r.version, buf);
        }
        message::encode(2, &r.any, buf);
        if !r.name.is_empty() {
            string::encode(3, &r.name, buf);
        }
    }
    fn shared(r: &Encoded) -> &std::sync::OnceLock<Bytes> {
        &r.shared_entries.delta
    }
}

/// A proto3 string field's length: nothing when empty, as prost encodes it.
fn string_len(tag: u32, value: &String) -> usize {
    if value.is_empty() {
        0
    } else {
        string::encoded_len(tag, value)
    }
}

/// The frame of `head` (a message's own fields) followed by the `resources` entries of `resources`.
fn frame<E: Entry>(head: &impl Message, resources: &[Arc<Encoded>]) -> Frame {
    // Each entry's content length, and its length with its field key and length.
    let lens: Vec<(usize, usize)> = resources
        .iter()
        .map(|r| E::content_len(r))
        .map(|content| (content, field_len(RESOURCES, content)))
        .collect();
    let head_len = head.encoded_len();
    let copied = head_len
        + lens
            .iter()
            .map(|&(_, len)| len)
            .filter(|&len| len < SHARED_ENTRY_MIN)
            .sum::<usize>();
    let message_len = head_len + lens.iter().map(|&(_, len)| len).sum::<usize>();
    let mut writer = FrameWriter::new(message_len, copied);
    head.encode_raw(writer.copied());
    for (r, &(content, len)) in resources.iter().zip(&lens) {
        let put_entry = |buf: &mut BytesMut| {
            put_field_head(RESOURCES, content, buf);
            E::put_content(r, buf);
        };
        if len < SHARED_ENTRY_MIN {
            put_entry(writer.copied());
        } else {
            let entry = E::shared(r).get_or_init(|| {
                let mut buf = BytesMut::with_capacity(len);
                put_entry(&mut buf);
                buf.freeze()
            });
            writer.share(entry.clone());
        }
    }
    writer.finish()
}

impl Outgoing<DiscoveryResponse> {
    pub fn frame(&self) -> Frame {
        frame::<SotwEntry>(&self.message, &self.resources)
    }

    /// The whole message, resources copied in.
    pub fn to_message(&self) -> DiscoveryResponse {
        DiscoveryResponse {
            resources: self.resources.iter().map(|r| r.any.clone()).collect(),
            ..self.message.clone()
        }
    }
}

impl Outgoing<DeltaDiscoveryResponse> {
    pub fn frame(&self) -> Frame {
        frame::<DeltaEntry>(&self.message, &self.resources)
    }

    /// The whole message, resources copied in.
    pub fn to_message(&self) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            resources: self
                .resources
                .iter()
                .map(|r| Resource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any.clone()),
                    ..Default::default()
                })
                .collect(),
            ..self.message.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::frame::FRAME_HEADER;
    use envoy_types::pb::google::protobuf::Any;

    fn resource(name: &str, size: usize) -> Arc<Encoded> {
        Arc::new(Encoded {
            name: name.into(),
            version: format!("v-{name}"),
            any: Any {
                type_url: "type.googleapis.com/test".into(),
                value: (0..size).map(|i| i as u8).collect(),
            },
            eds_service: None,
            shared_entries: Default::default(),
        })
    }

    fn resources() -> Vec<Arc<Encoded>> {
        vec![
            resource("small", 10),
            resource("large", SHARED_ENTRY_MIN + 1),
            resource("", 0),
            resource("another", 300),
        ]
    }

    fn message_of(frame: &Frame) -> Bytes {
        let bytes = frame.to_bytes();
        assert_eq!(bytes[0], 0, "uncompressed");
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len, frame.message_len());
        assert_eq!(bytes.len(), FRAME_HEADER + len);
        bytes.slice(FRAME_HEADER..)
    }

    /// What Envoy decodes from a frame is the whole message, and a large resource's chunk is the generation's
    /// own bytes, shared by every frame that carries it.
    #[test]
    fn a_sotw_frame_decodes_to_the_whole_message_and_shares_large_resources() {
        let outgoing = Outgoing {
            message: DiscoveryResponse {
                version_info: "v1".into(),
                type_url: "type.googleapis.com/test".into(),
                nonce: "7".into(),
                ..Default::default()
            },
            resources: resources(),
        };
        let (first, second) = (outgoing.frame(), outgoing.frame());
        let decoded = DiscoveryResponse::decode(message_of(&first)).unwrap();
        assert_eq!(decoded, outgoing.to_message());
        assert_eq!(decoded.resources.len(), 4);
        // What the frame holds of its own is all of it but the shared chunk.
        let large: usize = first
            .clone()
            .into_chunks()
            .iter()
            .filter(|c| c.len() >= SHARED_ENTRY_MIN)
            .map(|c| c.len())
            .sum();
        assert_eq!(
            first.owned_len(),
            FRAME_HEADER + first.message_len() - large
        );
        let shared = |frame: Frame| -> Vec<*const u8> {
            frame
                .into_chunks()
                .iter()
                .filter(|c| c.len() >= SHARED_ENTRY_MIN)
                .map(|c| c.as_ptr())
                .collect()
        };
        let (a, b) = (shared(first), shared(second));
        assert_eq!(a.len(), 1, "the large resource is a chunk of its own");
        assert_eq!(a, b, "and the same bytes in every frame");
    }

    #[test]
    fn a_delta_frame_decodes_to_the_whole_message() {
        let outgoing = Outgoing {
            message: DeltaDiscoveryResponse {
                system_version_info: "v1".into(),
                type_url: "type.googleapis.com/test".into(),
                removed_resources: vec!["gone".into()],
                nonce: "8".into(),
                ..Default::default()
            },
            resources: resources(),
        };
        for _ in 0..2 {
            let frame = outgoing.frame();
            assert_eq!(frame.clone().into_chunks().len(), 3);
            let decoded = DeltaDiscoveryResponse::decode(message_of(&frame)).unwrap();
            assert_eq!(decoded, outgoing.to_message());
        }
    }
}
