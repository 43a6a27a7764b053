//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! Each request carries `webhook-id` (the event's id: the same on every retry, so a
//! receiver drops repeats), `webhook-timestamp` (seconds since the epoch, of this attempt)
//! and `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `<id>.<timestamp>.<body>`
//! under the secret. The secret is written `whsec_` and the base64 of its bytes, as the
//! Standard Webhooks libraries (Python, Java, C#, PHP, JavaScript, Go) read it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DeliverError;

/// The prefix of a Standard Webhooks secret.
pub const PREFIX: &str = "whsec_";

/// A webhook signing secret.
#[derive(Clone)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// Reads `whsec_<base64>` (24 to 64 bytes, as the specification asks).
    pub fn parse(text: &str) -> Result<Self, DeliverError> {
        let text = text.trim();
        let b64 = text.strip_prefix(PREFIX).ok_or_else(|| {
            DeliverError::Secret(format!(
                "a webhook secret starts with {PREFIX} followed by base64 (e.g. what `lienthong agency subscribe` generates)"
            ))
        })?;
        let key = STANDARD.decode(b64).map_err(|e| {
            DeliverError::Secret(format!("the part after {PREFIX} is not base64: {e}"))
        })?;
        if !(24..=64).contains(&key.len()) {
            return Err(DeliverError::Secret(format!(
                "the secret is {} bytes; use 24 to 64",
                key.len()
            )));
        }
        Ok(Self { key })
    }

    /// A fresh random secret (32 bytes).
    pub fn generate() -> Self {
        Self {
            key: rand::random::<[u8; 32]>().to_vec(),
        }
    }

    /// `whsec_<base64>`.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The `webhook-signature` value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specifications_example() {
        // The example of the Standard Webhooks specification (and its libraries' tests).
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_checked_and_round_trip() {
        assert!(Secret::parse("nope").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err(), "too short");
        let s = Secret::generate();
        let again = Secret::parse(&s.to_text()).unwrap();
        assert_eq!(s.sign("a", 1, b"x"), again.sign("a", 1, b"x"));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
