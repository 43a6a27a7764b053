//! The hash chain over a stream's stored messages.
//!
//! For each message: a 16-byte **content digest** — SHA-256 over the subject, the headers
//! that matter (`Content-Type`, `Nats-Msg-Id`, every `ce-` header; sorted, lower-cased names)
//! and the payload — and its **store time** (nanoseconds since the epoch). The chain links
//! them in sequence order: `h_n = SHA-256(h_{n-1} ‖ n ‖ time_n ‖ content_n)`, starting from
//! `h_0 = SHA-256("lienthong-audit-v1" ‖ 0 ‖ stream name)`. Changing, removing, adding or
//! moving any message — or re-storing it later — changes every head after it.

use lienthong_bus::reader::StoredMessage;
use sha2::{Digest, Sha256};

/// One message as the chain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub content: [u8; 16],
    pub stored_ns: i64,
}

impl Entry {
    /// Stands for a sequence with no message (never written by a healthy stream).
    pub const ABSENT: Entry = Entry {
        content: [0; 16],
        stored_ns: 0,
    };

    pub fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&self.content);
        b[16..].copy_from_slice(&self.stored_ns.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != 24 {
            return None;
        }
        let mut content = [0u8; 16];
        content.copy_from_slice(&b[..16]);
        Some(Self {
            content,
            stored_ns: i64::from_be_bytes(b[16..].try_into().ok()?),
        })
    }
}

/// Headers that matter to the record, canonically.
pub fn canonical_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut kept: Vec<(String, &str)> = headers
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .filter(|(n, _)| n == "content-type" || n == "nats-msg-id" || n.starts_with("ce-"))
        .collect();
    kept.sort();
    kept.iter().map(|(n, v)| format!("{n}:{v}\n")).collect()
}

/// The content digest of a message.
pub fn content_digest(subject: &str, headers: &str, payload: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(subject.as_bytes());
    h.update([0]);
    h.update(headers.as_bytes());
    h.update([0]);
    h.update(payload);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The canonical headers of a stored message.
pub fn message_headers(msg: &StoredMessage) -> String {
    let pairs: Vec<(String, String)> = msg
        .headers
        .iter()
        .flat_map(|(n, vs)| {
            vs.iter()
                .map(move |v| (n.to_string(), v.as_str().to_string()))
        })
        .collect();
    canonical_headers(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// The entry of a stored message.
pub fn entry_of(msg: &StoredMessage) -> Option<(u64, Entry)> {
    Some((
        msg.sequence,
        Entry {
            content: content_digest(&msg.subject, &message_headers(msg), &msg.payload),
            stored_ns: msg.stored_ns()?,
        },
    ))
}

/// The head before a stream's first message.
pub fn genesis(stream: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lienthong-audit-v1");
    h.update([0]);
    h.update(stream.as_bytes());
    h.finalize().into()
}

/// `h_n` from `h_{n-1}` and message `n`.
pub fn link(prev: &[u8; 32], seq: u64, e: &Entry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(e.stored_ns.to_be_bytes());
    h.update(e.content);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_changes_the_head() {
        let e = |c: u8, t: i64| Entry {
            content: [c; 16],
            stored_ns: t,
        };
        let head = |es: &[Entry]| {
            es.iter()
                .enumerate()
                .fold(genesis("S"), |h, (i, e)| link(&h, i as u64 + 1, e))
        };
        let base = head(&[e(1, 10), e(2, 20), e(3, 30)]);
        assert_ne!(base, head(&[e(1, 10), e(9, 20), e(3, 30)]), "altered");
        assert_ne!(base, head(&[e(1, 10), e(3, 30)]), "missing");
        assert_ne!(base, head(&[e(2, 20), e(1, 10), e(3, 30)]), "reordered");
        assert_ne!(base, head(&[e(1, 10), e(2, 21), e(3, 30)]), "re-stored");
        assert_ne!(genesis("S"), genesis("T"));
        assert_eq!(Entry::from_bytes(&e(7, -3).to_bytes()), Some(e(7, -3)));
    }

    #[test]
    fn only_the_headers_that_matter() {
        let a = canonical_headers(
            [
                ("Nats-Msg-Id", "x"),
                ("ce-id", "1"),
                ("Content-Type", "a"),
                ("Nats-Expected-Last-Sequence", "5"),
            ]
            .into_iter(),
        );
        assert_eq!(a, "ce-id:1\ncontent-type:a\nnats-msg-id:x\n");
    }
}
