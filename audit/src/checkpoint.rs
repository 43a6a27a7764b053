//! Signed checkpoints: the head of a stream's chain at a sequence, with the entries of the
//! range it covers, signed with Ed25519.
//!
//! Checkpoints of one stream chain to each other (`prev_head` = the previous `head`), so a
//! checkpoint cannot be dropped or replaced without breaking the next. Each carries the
//! stream's creation time: a stream deleted and recreated (even with the same messages)
//! shows. The signature covers the canonical JSON of every field but `signature`.

use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chain::{genesis, link, Entry};
use crate::error::{AuditError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub stream: String,
    /// The stream's creation time, as the server reports it.
    pub stream_created: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Hex head before `first_seq`.
    pub prev_head: String,
    /// Hex head after `last_seq`.
    pub head: String,
    /// Base64 of 24 bytes per sequence `first_seq..=last_seq`: content digest, store time.
    pub entries: String,
    pub signed_at: DateTime<Utc>,
    /// Hex Ed25519 public key of the signer.
    pub public_key: String,
    /// Hex Ed25519 signature over the canonical JSON of the other fields.
    #[serde(default)]
    pub signature: String,
    /// Set only on a resumption: a checkpoint covering no message, written when a standby
    /// centre was promoted holding the stream up to `first_seq - 1` while earlier checkpoints
    /// (signed by the lost centre) cover more. The chain resumes after what is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes: Option<Resumption>,
}

/// Why a chain resumes at an earlier sequence than its last checkpoint covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumption {
    /// In words, for the auditor: who resumed it and why.
    pub reason: String,
    /// The last sequence the earlier checkpoints covered: `first_seq..=lost_to` were
    /// recorded but are not held (lost with the centre).
    pub lost_to: u64,
}

/// Why a checkpoint cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFault {
    /// Signed by a key other than the one the auditor trusts.
    UnknownKey { key: String },
    /// The signature does not match the content (forged or altered).
    BadSignature,
    /// The entries do not hash to the head, or the range is malformed.
    Inconsistent(String),
}

impl std::fmt::Display for CheckpointFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKey { key } => write!(
                f,
                "checkpoint signed with another key ({}…), not the published audit key",
                &key[..key.len().min(16)]
            ),
            Self::BadSignature => write!(f, "checkpoint signature invalid (forged or altered)"),
            Self::Inconsistent(why) => write!(f, "checkpoint inconsistent: {why}"),
        }
    }
}

fn unsigned_bytes(c: &Checkpoint) -> Vec<u8> {
    let mut c = c.clone();
    c.signature = String::new();
    serde_json::to_vec(&c).unwrap_or_default()
}

impl Checkpoint {
    /// Builds and signs the checkpoint covering `entries` from `first_seq`.
    pub fn sign(
        key: &SigningKey,
        stream: &str,
        stream_created: &str,
        first_seq: u64,
        prev_head: [u8; 32],
        entries: &[Entry],
    ) -> Self {
        let mut head = prev_head;
        let mut blob = Vec::with_capacity(entries.len() * 24);
        for (i, e) in entries.iter().enumerate() {
            head = link(&head, first_seq + i as u64, e);
            blob.extend_from_slice(&e.to_bytes());
        }
        let mut c = Checkpoint {
            version: 1,
            stream: stream.to_string(),
            stream_created: stream_created.to_string(),
            first_seq,
            last_seq: first_seq + entries.len() as u64 - 1,
            prev_head: hex::encode(prev_head),
            head: hex::encode(head),
            entries: base64::engine::general_purpose::STANDARD.encode(&blob),
            signed_at: Utc::now(),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: String::new(),
            resumes: None,
        };
        c.signature = hex::encode(key.sign(&unsigned_bytes(&c)).to_bytes());
        c
    }

    /// A signed resumption of `stream`'s chain after `held_to`, whose chain head is
    /// `head_at_held`: the earlier checkpoints covered up to `lost_to`.
    pub fn resumption(
        key: &SigningKey,
        stream: &str,
        stream_created: &str,
        held_to: u64,
        head_at_held: [u8; 32],
        lost_to: u64,
        reason: String,
    ) -> Self {
        let mut c = Self::sign(key, stream, stream_created, held_to + 1, head_at_held, &[]);
        c.resumes = Some(Resumption { reason, lost_to });
        c.signature = hex::encode(key.sign(&unsigned_bytes(&c)).to_bytes());
        c
    }

    /// Reads a checkpoint back from its `AUDIT` message (a CloudEvent carrying it as data).
    pub fn from_message(headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> Result<Self> {
        let ev = lienthong_bus::envelope::decode(headers, payload)?;
        let data = lienthong_bus::envelope::data_json(&ev).unwrap_or_default();
        serde_json::from_value(data).map_err(|e| AuditError::Corrupt {
            what: "AUDIT checkpoint".into(),
            reason: e.to_string(),
        })
    }

    /// The entries, in sequence order.
    pub fn entries(&self) -> Result<Vec<Entry>, CheckpointFault> {
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&self.entries)
            .map_err(|e| CheckpointFault::Inconsistent(format!("entries are not base64: {e}")))?;
        if blob.len() % 24 != 0 {
            return Err(CheckpointFault::Inconsistent(
                "entries are not whole records".into(),
            ));
        }
        Ok(blob.chunks(24).filter_map(Entry::from_bytes).collect())
    }

    /// Checks the signature against the trusted key and that the entries hash to the head.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<Vec<Entry>, CheckpointFault> {
        let trusted_hex = hex::encode(trusted.to_bytes());
        if self.public_key != trusted_hex {
            return Err(CheckpointFault::UnknownKey {
                key: self.public_key.clone(),
            });
        }
        let sig = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .ok_or(CheckpointFault::BadSignature)?;
        trusted
            .verify(&unsigned_bytes(self), &sig)
            .map_err(|_| CheckpointFault::BadSignature)?;
        let entries = self.entries()?;
        if entries.len() as u64 != self.last_seq + 1 - self.first_seq {
            return Err(CheckpointFault::Inconsistent(format!(
                "{} entries for sequences {}..={}",
                entries.len(),
                self.first_seq,
                self.last_seq
            )));
        }
        let mut head = parse_head(&self.prev_head)
            .ok_or_else(|| CheckpointFault::Inconsistent("prev_head is not 32 hex bytes".into()))?;
        for (i, e) in entries.iter().enumerate() {
            head = link(&head, self.first_seq + i as u64, e);
        }
        if hex::encode(head) != self.head {
            return Err(CheckpointFault::Inconsistent(
                "the entries do not hash to the head".into(),
            ));
        }
        Ok(entries)
    }

    /// The chain hash after each covered sequence.
    pub fn heads(&self, entries: &[Entry]) -> Vec<(u64, String)> {
        let mut head = parse_head(&self.prev_head).unwrap_or_else(|| genesis(&self.stream));
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let seq = self.first_seq + i as u64;
                head = link(&head, seq, e);
                (seq, hex::encode(head))
            })
            .collect()
    }
}

pub fn parse_head(hex_head: &str) -> Option<[u8; 32]> {
    hex::decode(hex_head)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

fn key_error(path: &std::path::Path, reason: impl std::fmt::Display) -> AuditError {
    AuditError::Key {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a key file: 64 hex digits (a signing key's seed, or a public key).
fn key_bytes(path: &std::path::Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| key_error(path, "expected 64 hex digits"))
}

/// The signing key in `path`, generated (mode 0600) if the file does not exist.
pub fn load_or_generate_signing_key(path: &std::path::Path) -> Result<SigningKey> {
    if path.exists() {
        return key_bytes(path).map(|b| SigningKey::from_bytes(&b));
    }
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| key_error(path, e))?;
    }
    lienthong_bus::credentials::write_private(path, &hex::encode(key.to_bytes()))?;
    Ok(key)
}

/// A trusted public key from a file (64 hex digits).
/// The public key in the file `path`, or given as its 64 hex digits (as the replay service
/// publishes it).
pub fn load_public_key(path: &std::path::Path) -> Result<VerifyingKey> {
    let given = path.to_string_lossy();
    let bytes = match hex::decode(given.trim()) {
        Ok(b) if !path.exists() && b.len() == 32 => <[u8; 32]>::try_from(b).expect("32 bytes"),
        _ => key_bytes(path)?,
    };
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| key_error(path, format!("not an Ed25519 public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                content: [i as u8; 16],
                stored_ns: i as i64,
            })
            .collect()
    }

    #[test]
    fn signed_checkpoints_verify_and_tampering_is_named() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let c = Checkpoint::sign(
            &key,
            "SSO",
            "2026-01-01T00:00:00Z",
            1,
            genesis("SSO"),
            &entries(5),
        );
        assert_eq!(c.last_seq, 5);
        assert_eq!(c.verify(&key.verifying_key()).unwrap().len(), 5);

        let mut forged = c.clone();
        forged.head = hex::encode([0u8; 32]);
        assert_eq!(
            forged.verify(&key.verifying_key()),
            Err(CheckpointFault::BadSignature)
        );

        let other = SigningKey::from_bytes(&[8; 32]);
        let foreign = Checkpoint::sign(
            &other,
            "SSO",
            "2026-01-01T00:00:00Z",
            1,
            genesis("SSO"),
            &entries(5),
        );
        assert!(matches!(
            foreign.verify(&key.verifying_key()),
            Err(CheckpointFault::UnknownKey { .. })
        ));

        let next = Checkpoint::sign(
            &key,
            "SSO",
            "x",
            6,
            parse_head(&c.head).unwrap(),
            &entries(2),
        );
        assert_eq!(next.prev_head, c.head);
        assert_eq!(c.heads(&c.entries().unwrap()).last().unwrap().1, c.head);
    }
}
