//! An event checked and encoded, ready to send: subject, headers and payload, and the
//! deterministic message id the server deduplicates on. Shared by the publisher, atomic
//! batches and dead letters.

use async_nats::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::envelope::{self, STRUCTURED_CONTENT_TYPE};
use crate::subject::EventType;

/// Header naming the subject filter for per-aggregate optimistic concurrency (server ≥ 2.11).
pub const EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT: &str =
    "Nats-Expected-Last-Subject-Sequence-Subject";

/// `Nats-Msg-Id` for an event: derived from `source` and `id` only, so the same record
/// published twice (by a restart, a retry or a re-poll) is stored once.
pub fn message_id(source: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    // The first 16 bytes in lower-case hex, written directly (hex::encode collects char by
    // char): once per published event.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for b in &h.finalize()[..16] {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    text
}

/// An event checked and encoded, ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: bytes::Bytes,
}

impl Prepared {
    /// Its size as the server counts it against `max_payload`: the payload and the headers
    /// in their wire form (`NATS/1.0␍␊`, `name: value␍␊` each, a blank line).
    pub fn size(&self) -> usize {
        self.payload.len() + headers_wire_len(&self.headers)
    }
}

/// The size of headers on the wire (0 when there are none).
pub fn headers_wire_len(headers: &HeaderMap) -> usize {
    let mut n = 0;
    for (name, values) in headers.iter() {
        for v in values {
            n += AsRef::<str>::as_ref(name).len() + 2 + v.as_str().len() + 2;
        }
    }
    if n == 0 {
        0
    } else {
        n + "NATS/1.0\r\n".len() + 2
    }
}

/// The headers of a structured-mode event without a concurrency expectation: the content
/// type and the dedupe id, a function of `source` and `id` alone.
pub(crate) fn plain_headers(source: &str, id: &str) -> HeaderMap {
    headers_with_id(message_id(source, id).into())
}

/// The content type and the dedupe id `id`.
pub(crate) fn headers_with_id(id: HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(envelope::CONTENT_TYPE, STRUCTURED_CONTENT_TYPE);
    headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    headers
}

/// The dedupe id of headers that are exactly [`headers_with_id`]'s (no concurrency
/// expectation, nothing else); `None` for any others.
pub(crate) fn plain_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    let values: usize = headers.iter().map(|(_, v)| v.len()).sum();
    let content_type = headers.get(envelope::CONTENT_TYPE)?;
    (values == 2 && content_type.as_str() == STRUCTURED_CONTENT_TYPE)
        .then(|| headers.get(async_nats::header::NATS_MESSAGE_ID))
        .flatten()
}

/// The headers of a structured-mode event: content type, the dedupe id and, when asked, the
/// per-aggregate concurrency expectation.
pub(crate) fn headers(
    source: &str,
    id: &str,
    ty: &EventType,
    key: &str,
    expected: Option<u64>,
) -> HeaderMap {
    let mut headers = plain_headers(source, id);
    if let Some(seq) = expected {
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            seq.to_string().as_str(),
        );
        headers.insert(
            EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT,
            ty.aggregate_filter(key).as_str(),
        );
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_depend_on_source_and_id_only() {
        assert_eq!(message_id("urn:a", "1"), message_id("urn:a", "1"));
        assert_ne!(message_id("urn:a", "1"), message_id("urn:b", "1"));
        assert_ne!(message_id("urn:a1", ""), message_id("urn:a", "1"));
        assert_eq!(message_id("urn:a", "1").len(), 32);
        let mut h = Sha256::new();
        h.update(b"urn:a\x001");
        assert_eq!(message_id("urn:a", "1"), hex::encode(&h.finalize()[..16]));
    }
}
