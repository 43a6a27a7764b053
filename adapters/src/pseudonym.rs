//! Keyed pseudonymisation of identifiers (sign-on users and sessions, meeting participants):
//! HMAC-SHA256 under a key kept out of the repository, so agencies can count distinct people
//! without learning who they are; without the key the references cannot be reversed or
//! recomputed. Rotating the key changes every reference.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Keyed pseudonymisation of identifiers.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(***)")
    }
}

impl Pseudonymizer {
    /// At least 16 bytes of key.
    pub fn new(key: &[u8]) -> Result<Self, crate::AdapterError> {
        if key.len() < 16 {
            return Err(crate::AdapterError::Config(format!(
                "the pseudonymisation key must be at least 16 bytes, got {}",
                key.len()
            )));
        }
        Ok(Self { key: key.to_vec() })
    }

    /// `u-` (`s-` for sessions) + 32 hex digits of HMAC-SHA256(key, `<kind>:<realm>:<id>`).
    pub fn reference(&self, kind: &str, realm: &str, id: &str) -> String {
        let prefix = if kind == "session" { "s-" } else { "u-" };
        format!("{prefix}{}", self.digest(kind, realm, id))
    }

    /// A meeting participant: `p-` + 32 hex digits of HMAC-SHA256(key,
    /// `participant:<engine>:<account or session id>`).
    pub fn participant(&self, engine: &str, id: &str) -> String {
        format!("p-{}", self.digest("participant", engine, id))
    }

    fn digest(&self, kind: &str, scope: &str, id: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(scope.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Reads the key from a file (at least 16 bytes).
    pub fn from_file(path: &std::path::Path) -> Result<Self, crate::AdapterError> {
        let key = std::fs::read(path).map_err(|e| {
            crate::AdapterError::Config(format!(
                "pseudonymization_key_file {}: {e}",
                path.display()
            ))
        })?;
        Self::new(&key)
    }
}
