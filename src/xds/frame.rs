//! A gRPC message as the chunks it is written in. A response carries the generation's encoded resources;
//! copying a large one into every proxy's response (a 364 KB route configuration to each of 1,000 proxies)
//! was most of what a change cost the server beyond sending bytes. A large resource is therefore encoded as a
//! response entry once and shared: its chunk is the same `Bytes` for every response, which h2 writes from
//! where it is. Small parts are copied together into chunks of their own, so a response of many small
//! resources is still a few writes.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

/// The gRPC message header: a compression flag and the length, big-endian.
pub const FRAME_HEADER: usize = 5;

/// Resources whose response entry is at least this large are shared rather than copied; below it, a copy
/// costs less than a chunk of its own (and a data frame's header on the wire).
pub const SHARED_ENTRY_MIN: usize = 16 * 1024;

/// One framed message: the header, then the message's bytes, in order.
#[derive(Debug, Clone)]
pub struct Frame {
    chunks: Vec<Bytes>,
    message_len: usize,
    /// The chunks shared with other frames (large resources' entries), by address and length.
    shared: Vec<(usize, usize)>,
}

impl Frame {
    /// The message's length, without the header.
    pub fn message_len(&self) -> usize {
        self.message_len
    }

    /// The bytes this frame holds of its own: the header and what was copied, not the chunks it shares with
    /// every other response carrying the same resources.
    pub fn owned_len(&self) -> usize {
        FRAME_HEADER + self.message_len - self.shared.iter().map(|(_, len)| len).sum::<usize>()
    }

    /// The chunks it shares with other frames, each by its address and length: the same chunk is the same pair.
    pub fn shared_chunks(&self) -> &[(usize, usize)] {
        &self.shared
    }

    pub fn into_chunks(self) -> Vec<Bytes> {
        self.chunks
    }

    /// The whole frame in one buffer, as the peer reads it.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Bytes {
        let mut all = BytesMut::with_capacity(FRAME_HEADER + self.message_len);
        for chunk in &self.chunks {
            all.put_slice(chunk);
        }
        all.freeze()
    }
}

/// Writes a frame whose message length is known up front.
pub struct FrameWriter {
    chunks: Vec<Bytes>,
    current: BytesMut,
    message_len: usize,
    shared: Vec<(usize, usize)>,
}

impl FrameWriter {
    /// A frame for a message of `message_len` bytes; `copied` of them go through [`FrameWriter::copied`] and
    /// the rest through [`FrameWriter::share`] (for the size of the copied chunks' buffers).
    pub fn new(message_len: usize, copied: usize) -> FrameWriter {
        let mut current = BytesMut::with_capacity(FRAME_HEADER + copied.min(message_len));
        current.put_u8(0);
        // A single xDS response is far below 4 GiB: Envoy refuses anything over its own limits long before.
        current.put_u32(u32::try_from(message_len).unwrap_or(u32::MAX));
        FrameWriter {
            chunks: Vec::new(),
            current,
            message_len,
            shared: Vec::new(),
        }
    }

    /// The buffer copied parts are written into.
    pub fn copied(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    /// A part shared as it is.
    pub fn share(&mut self, part: Bytes) {
        self.close_copied();
        self.shared.push((part.as_ptr() as usize, part.len()));
        self.chunks.push(part);
    }

    pub fn finish(mut self) -> Frame {
        self.close_copied();
        debug_assert_eq!(
            self.chunks.iter().map(Bytes::len).sum::<usize>(),
            FRAME_HEADER + self.message_len,
            "the frame's parts add up to the length its header says"
        );
        Frame {
            chunks: self.chunks,
            message_len: self.message_len,
            shared: self.shared,
        }
    }

    /// Ends the chunk of copied parts written so far, if any.
    fn close_copied(&mut self) {
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
    }
}

/// The length of a length-delimited field `tag` whose content is `len` bytes long.
pub fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
}

/// Writes the key and length of a length-delimited field `tag` whose content of `len` bytes follows.
pub fn put_field_head(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}
