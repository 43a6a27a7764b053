//! Subjects: `egov.<subsystem>.<entity>.<key>.<action>`, with a reversible key encoding.
//!
//! A key comes from a subsystem (a report id, a document number) and may hold anything:
//! `.`, `*`, `>`, spaces, `/`, Vietnamese letters. Put raw into a subject, such a value
//! would split tokens or act as a wildcard. The encoding keeps `A-Z a-z 0-9 - _` as they
//! are and writes every other byte of the UTF-8 form as `~` followed by two upper-case hex
//! digits, so `PT.2023/1003 >` becomes `PT~2E2023~2F1003~20~3E`. It is reversible
//! (`~` itself is escaped as `~7E`), ASCII-only, never empty and never contains a NATS
//! wildcard or separator.

use crate::error::BusError;

/// The subject prefix every event subject starts with.
pub const SUBJECT_ROOT: &str = "egov";

/// The longest key token written as the key itself; longer ones become a digest.
pub const MAX_KEY_TOKEN: usize = 200;

/// The subject token of a key: its encoding, or `~~<sha256 hex>` when that would be longer
/// than [`MAX_KEY_TOKEN`].
pub fn subject_token(key: &str) -> String {
    let mut out = String::new();
    push_token(&mut out, key);
    out
}

/// Appends [`subject_token`]`(key)` to `out`.
fn push_token(out: &mut String, key: &str) {
    // Every byte encodes to at most 3: short keys never need the digest.
    if key.len() * 3 > MAX_KEY_TOKEN {
        let encoded = encode_key(key);
        if encoded.len() > MAX_KEY_TOKEN {
            use sha2::{Digest, Sha256};
            out.push_str("~~");
            out.push_str(&hex::encode(Sha256::digest(key.as_bytes())));
            return;
        }
        out.push_str(&encoded);
        return;
    }
    push_encoded_key(out, key);
}

/// What a subject's key token holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyToken {
    /// The key itself.
    Key(String),
    /// The SHA-256 (hex) of a key too long for a subject; the key is in the event's `subject`.
    Digest(String),
}

/// Reads a key token written by [`subject_token`].
pub fn read_token(token: &str) -> Result<KeyToken, BusError> {
    match token.strip_prefix("~~") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(KeyToken::Digest(hex.to_string()))
        }
        _ => decode_key(token).map(KeyToken::Key),
    }
}

/// Encodes a subsystem value into one subject token. See the module docs for the scheme.
///
/// ```
/// use lienthong_bus::subject::{encode_key, decode_key};
/// assert_eq!(encode_key("PT-2023-000123"), "PT-2023-000123");
/// assert_eq!(encode_key("PT.2023/1003 >"), "PT~2E2023~2F1003~20~3E");
/// assert_eq!(decode_key("PT~2E2023~2F1003~20~3E").unwrap(), "PT.2023/1003 >");
/// ```
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    push_encoded_key(&mut out, key);
    out
}

/// Appends [`encode_key`]`(key)` to `out`.
fn push_encoded_key(out: &mut String, key: &str) {
    if key.is_empty() {
        // An empty token is not a valid subject; `~` alone is never produced otherwise.
        out.push('~');
        return;
    }
    for &b in key.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push('~');
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 0x0f) as usize]));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Reverses [`encode_key`].
pub fn decode_key(token: &str) -> Result<String, BusError> {
    if token == "~" {
        return Ok(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| BusError::Subject {
                        subject: token.to_string(),
                        reason: format!("bad escape at byte {i}"),
                    })?;
                out.push(hex);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                out.push(b);
                i += 1;
            }
            other => {
                return Err(BusError::Subject {
                    subject: token.to_string(),
                    reason: format!("byte {other:#04x} at {i} is not allowed in an encoded key"),
                })
            }
        }
    }
    String::from_utf8(out).map_err(|_| BusError::Subject {
        subject: token.to_string(),
        reason: "decoded key is not UTF-8".into(),
    })
}

/// The parts of an event type `vn.egov.<subsystem>.<entity>.<action>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    pub subsystem: String,
    pub entity: String,
    pub action: String,
}

/// Prefix of every CloudEvents `type` on the bus.
pub const TYPE_PREFIX: &str = "vn.egov.";

impl EventType {
    pub fn new(subsystem: &str, entity: &str, action: &str) -> Self {
        Self {
            subsystem: subsystem.to_string(),
            entity: entity.to_string(),
            action: action.to_string(),
        }
    }

    /// Parses `vn.egov.<subsystem>.<entity>.<action>`.
    pub fn parse(ty: &str) -> Result<Self, BusError> {
        let bad = |reason: &str| BusError::EventType {
            ty: ty.to_string(),
            reason: reason.to_string(),
        };
        let rest = ty
            .strip_prefix(TYPE_PREFIX)
            .ok_or_else(|| bad("must start with `vn.egov.`"))?;
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 3 {
            return Err(bad("must be vn.egov.<subsystem>.<entity>.<action>"));
        }
        for p in &parts {
            if p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
            {
                return Err(bad("each part must be lower-case letters, digits or `_`"));
            }
        }
        Ok(Self::new(parts[0], parts[1], parts[2]))
    }

    /// The subject for the aggregate `key`: `egov.<subsystem>.<entity>.<key token>.<action>`.
    pub fn subject(&self, key: &str) -> String {
        // Appended piece by piece (no formatting machinery): once per published event.
        let mut out = String::with_capacity(
            SUBJECT_ROOT.len()
                + self.subsystem.len()
                + self.entity.len()
                + self.action.len()
                + key.len()
                + 8,
        );
        for part in [SUBJECT_ROOT, ".", &self.subsystem, ".", &self.entity, "."] {
            out.push_str(part);
        }
        push_token(&mut out, key);
        out.push('.');
        out.push_str(&self.action);
        out
    }

    /// The CloudEvents `type`: `vn.egov.<subsystem>.<entity>.<action>` (its `Display`),
    /// appended piece by piece: once per published event.
    pub fn name(&self) -> String {
        let parts = self.name_parts();
        let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|p| out.push_str(p));
        out
    }

    /// The pieces of [`Self::name`].
    fn name_parts(&self) -> [&str; 6] {
        [
            TYPE_PREFIX,
            &self.subsystem,
            ".",
            &self.entity,
            ".",
            &self.action,
        ]
    }

    /// The wildcard subject of every event of one aggregate, used for optimistic concurrency.
    pub fn aggregate_filter(&self, key: &str) -> String {
        format!(
            "{SUBJECT_ROOT}.{}.{}.{}.>",
            self.subsystem,
            self.entity,
            subject_token(key)
        )
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.name_parts().iter().try_for_each(|p| f.write_str(p))
    }
}

/// A parsed event subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubject {
    pub subsystem: String,
    pub entity: String,
    /// The key, or the digest of a long one (see [`KeyToken`]).
    pub key: KeyToken,
    pub action: String,
}

impl EventSubject {
    /// Parses `egov.<subsystem>.<entity>.<encoded key>.<action>` and decodes the key.
    pub fn parse(subject: &str) -> Result<Self, BusError> {
        let parts: Vec<&str> = subject.split('.').collect();
        if parts.len() != 5 || parts[0] != SUBJECT_ROOT {
            return Err(BusError::Subject {
                subject: subject.to_string(),
                reason: "expected egov.<subsystem>.<entity>.<key>.<action>".into(),
            });
        }
        Ok(Self {
            subsystem: parts[1].to_string(),
            entity: parts[2].to_string(),
            key: read_token(parts[3])?,
            action: parts[4].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_inject_subject_syntax() {
        for key in [
            "PT-2023-000981",
            "PT.2023/1003 >",
            "*",
            ">",
            "a.b.c",
            "tab\there",
            "new\nline",
            "Phường Phú Thủy",
            "~7E",
            "1245/UBND-VP",
            "",
        ] {
            let token = encode_key(key);
            assert!(!token.is_empty());
            assert!(
                !token.contains(['.', '*', '>']) && !token.chars().any(char::is_whitespace),
                "{key:?} encoded to {token:?}"
            );
            assert!(token.is_ascii());
            assert_eq!(decode_key(&token).unwrap(), key);
        }
    }

    #[test]
    fn names_and_subjects_are_the_formatted_ones() {
        let t = EventType::parse("vn.egov.field_reports.report.submitted").unwrap();
        assert_eq!(t.name(), t.to_string());
        assert_eq!(t.name(), "vn.egov.field_reports.report.submitted");
        for key in [
            "PT-1",
            "a.b c",
            "",
            &"x".repeat(66),
            &"é/".repeat(40),
            &"PT/".repeat(500),
        ] {
            assert_eq!(
                t.subject(key),
                format!("egov.field_reports.report.{}.submitted", subject_token(key)),
                "{key:?}"
            );
        }
    }

    #[test]
    fn long_keys_become_a_stable_digest_short_ones_stay_keys() {
        let t = EventType::parse("vn.egov.field_reports.report.submitted").unwrap();
        let long = "PT/".repeat(5000);
        let token = subject_token(&long);
        assert_eq!(token.len(), 66);
        assert_eq!(token, subject_token(&long), "stable");
        assert_ne!(token, subject_token(&format!("{long}x")));
        assert!(t.subject(&long).len() < 120);
        assert_eq!(
            t.aggregate_filter(&long),
            format!("egov.field_reports.report.{token}.>")
        );
        let s = EventSubject::parse(&t.subject(&long)).unwrap();
        assert!(matches!(s.key, KeyToken::Digest(ref h) if h.len() == 64));
        // At the limit, a key is still itself.
        let edge = "a".repeat(MAX_KEY_TOKEN);
        assert_eq!(subject_token(&edge), edge);
        let over = "a".repeat(MAX_KEY_TOKEN + 1);
        assert!(subject_token(&over).starts_with("~~"));
        // An ordinary encoding never starts with `~~`: `~` itself is `~7E`.
        assert_eq!(encode_key("~~x"), "~7E~7Ex");
    }

    #[test]
    fn readable_ids_stay_readable() {
        assert_eq!(encode_key("PT-2023-000123"), "PT-2023-000123");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(decode_key("abc~4").is_err());
        assert!(decode_key("abc~ZZ").is_err());
        assert!(decode_key("a.b").is_err());
    }

    #[test]
    fn types_and_subjects() {
        let t = EventType::parse("vn.egov.field_reports.report.submitted").unwrap();
        assert_eq!(t.subsystem, "field_reports");
        assert_eq!(
            t.subject("PT.2023/1003 >"),
            "egov.field_reports.report.PT~2E2023~2F1003~20~3E.submitted"
        );
        assert_eq!(t.aggregate_filter("X"), "egov.field_reports.report.X.>");
        let s = EventSubject::parse(&t.subject("PT.2023/1003 >")).unwrap();
        assert_eq!(s.key, KeyToken::Key("PT.2023/1003 >".into()));
        assert_eq!(t.to_string(), "vn.egov.field_reports.report.submitted");
        assert!(EventType::parse("egov.x.y.z").is_err());
        assert!(EventType::parse("vn.egov.x.y").is_err());
        assert!(EventType::parse("vn.egov.X.y.z").is_err());
    }
}
