//! Dead letters: input that failed validation, kept with the reason in the `DLQ` stream.
//!
//! A dead letter is itself a CloudEvent of type `vn.egov.dlq.event.rejected` whose data
//! holds the reason, every violation and the rejected event as it arrived. Its NATS subject
//! is `egov.dlq.<origin subsystem>.<encoded original id>.rejected`, so each adapter may be
//! allowed to write only its own subsystem's dead letters. Nothing is dropped: when the DLQ
//! cannot store, the publisher reports `Unavailable` and the sender retries.

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::envelope::{self, Classification, STRUCTURED_CONTENT_TYPE};
use crate::error::{BusError, Result, Violation};
use crate::prepared::{message_id, Prepared};
use crate::schema::SchemaRegistry;
use crate::subject::{subject_token, EventType};

/// The CloudEvents type of every dead letter.
pub const DEAD_LETTER_TYPE: &str = "vn.egov.dlq.event.rejected";

/// How much of an original too large to keep whole is kept (characters).
pub const KEPT_HEAD: usize = 4096;

/// `text` cut to `max` characters, with a note and its digest when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!(
        "{head}… [cut; {} bytes, sha256 {}]",
        text.len(),
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

/// The reason a publisher's check gives for rejecting an event, and its violations.
pub fn reason_of(error: &BusError) -> (&'static str, Vec<Violation>) {
    match error {
        BusError::Invalid { violations, .. } => ("schema_violation", violations.clone()),
        BusError::UnknownSchema { .. } => ("unknown_type", Vec::new()),
        BusError::EventType { .. } => ("bad_type", Vec::new()),
        BusError::TooLarge { .. } => ("too_large", Vec::new()),
        _ => ("bad_envelope", Vec::new()),
    }
}

/// What the DLQ keeps about one rejected input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `schema_violation`, `unknown_type`, `bad_type`, `bad_envelope`, `unreadable_record`,
    /// `too_large`.
    pub reason: String,
    /// The error in words.
    pub message: String,
    pub violations: Vec<Violation>,
    pub original_id: String,
    pub original_source: String,
    pub original_type: String,
    /// The rejected event, as structured-mode JSON.
    pub original: Value,
    pub rejected_at: DateTime<Utc>,
    /// The ward site whose event the hub did not admit (see [`DeadLetter::not_admitted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

impl DeadLetter {
    pub fn from_rejection(event: &Event, error: &BusError) -> Self {
        let (reason, violations) = reason_of(error);
        Self {
            reason: reason.to_string(),
            message: error.to_string(),
            violations,
            original_id: event.id().to_string(),
            original_source: event.source().to_string(),
            original_type: event.ty().to_string(),
            original: serde_json::to_value(event).unwrap_or(Value::Null),
            rejected_at: Utc::now(),
            site: None,
        }
    }

    /// A source record that could not be read at all (not even mapped to an event). The
    /// caller must strip personal fields from `original` first: the DLQ is on the bus too.
    pub fn unreadable(
        source: &str,
        ty: &str,
        record_id: &str,
        original: Value,
        message: String,
    ) -> Self {
        Self {
            reason: "unreadable_record".to_string(),
            message,
            violations: Vec::new(),
            original_id: record_id.to_string(),
            original_source: source.to_string(),
            original_type: ty.to_string(),
            original,
            rejected_at: Utc::now(),
            site: None,
        }
    }

    /// Input that could not be read and may hold secret or personal data: kept as its
    /// SHA-256 and size only, with the reason. `what` names the input (e.g. `edxml`).
    pub fn unreadable_digest(
        source: &str,
        ty: &str,
        what: &str,
        bytes: &[u8],
        message: String,
    ) -> Self {
        let sha = hex::encode(Sha256::digest(bytes));
        Self::unreadable(
            source,
            ty,
            &format!("{what}/{sha}"),
            serde_json::json!({"input": what, "sha256": sha, "size": bytes.len()}),
            message,
        )
    }

    /// What a ward site sent that the hub's admission refuses: kept with the site, the
    /// reason and the message's digest, size, subject and place in `INTAKE` — never its data
    /// (what a dishonest site writes is no more trusted than it is admitted). The message
    /// itself stays in `INTAKE`.
    #[allow(clippy::too_many_arguments)]
    pub fn not_admitted(
        site: &str,
        reason: &str,
        message: String,
        violations: Vec<Violation>,
        (id, source, ty): (&str, &str, &str),
        subject: &str,
        message_bytes: &[u8],
        intake: (&str, u64),
    ) -> Self {
        Self {
            reason: reason.to_string(),
            message,
            violations,
            original_id: id.to_string(),
            original_source: source.to_string(),
            original_type: ty.to_string(),
            original: serde_json::json!({
                "sha256": hex::encode(Sha256::digest(message_bytes)),
                "size": message_bytes.len(),
                "subject": subject,
                "intake_stream": intake.0,
                "intake_sequence": intake.1,
            }),
            rejected_at: Utc::now(),
            site: Some(site.to_string()),
        }
    }

    /// The subsystem the rejected input was meant for (`unknown` if its type is unreadable).
    pub fn origin(&self) -> String {
        EventType::parse(&self.original_type)
            .map(|t| t.subsystem)
            .unwrap_or_else(|_| "unknown".to_string())
    }

    /// The NATS subject: `egov.dlq.<origin>.<original id's token>.rejected` (a digest for a
    /// very long id, as for event keys).
    pub fn subject(&self) -> String {
        format!(
            "egov.dlq.{}.{}.rejected",
            self.origin(),
            subject_token(&self.original_id)
        )
    }

    /// The dead letter as a CloudEvent, encoded and ready to send, no larger than
    /// `max_payload` (the server's limit, headers included): an original too large to keep is
    /// replaced by its digest, its size and its first 4 KiB, and the message says so. The
    /// message id depends on the original source, id and content, so the same bad input is
    /// kept once.
    pub fn prepare(&self, registry: &SchemaRegistry, max_payload: usize) -> Result<Prepared> {
        let prepared = self.encode(registry)?;
        if prepared.size() <= max_payload {
            return Ok(prepared);
        }
        let text = self.original.to_string();
        let mut shortened = self.clone();
        shortened.original = serde_json::json!({
            "truncated": true,
            "sha256": hex::encode(Sha256::digest(text.as_bytes())),
            "size": text.len(),
            "head": text.chars().take(KEPT_HEAD).collect::<String>(),
        });
        shortened.message = format!(
            "{} (the original, {} bytes, is too large to keep whole: its SHA-256 and first {KEPT_HEAD} characters are kept)",
            shorten(&self.message, KEPT_HEAD),
            text.len()
        );
        shortened.original_id = shorten(&self.original_id, KEPT_HEAD);
        shortened.original_source = shorten(&self.original_source, KEPT_HEAD);
        shortened.original_type = shorten(&self.original_type, KEPT_HEAD);
        shortened.violations.truncate(100);
        for v in &mut shortened.violations {
            v.message = shorten(&v.message, 1000);
            v.pointer = shorten(&v.pointer, 1000);
        }
        let prepared = shortened.encode(registry)?;
        if prepared.size() > max_payload {
            return Err(BusError::TooLarge {
                what: format!("the dead letter of {}", shortened.original_id),
                size: prepared.size(),
                max: max_payload,
            });
        }
        Ok(prepared)
    }

    fn encode(&self, registry: &SchemaRegistry) -> Result<Prepared> {
        let mut digest = Sha256::new();
        digest.update(self.original.to_string().as_bytes());
        let short_id = if self.original_id.len() <= crate::subject::MAX_KEY_TOKEN {
            self.original_id.clone()
        } else {
            subject_token(&self.original_id)
        };
        let id = format!("dlq/{short_id}/{}", hex::encode(&digest.finalize()[..8]));
        let schema = registry.schema_id(DEAD_LETTER_TYPE, None)?;
        let event = envelope::build_event(
            &id,
            &self.original_source,
            DEAD_LETTER_TYPE,
            &short_id,
            self.rejected_at,
            schema,
            serde_json::to_value(self).map_err(|e| BusError::Envelope {
                reason: e.to_string(),
            })?,
            Classification::Restricted,
            None,
        )?;
        let mut headers = HeaderMap::new();
        headers.insert(envelope::CONTENT_TYPE, STRUCTURED_CONTENT_TYPE);
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message_id(&self.original_source, &id).as_str(),
        );
        headers.insert("Lienthong-Reject-Reason", self.reason.as_str());
        Ok(Prepared {
            id,
            subject: self.subject(),
            headers,
            payload: envelope::encode_structured(&event)?.into(),
        })
    }

    /// Reads a dead letter back from a DLQ message.
    pub fn from_event(event: &Event) -> Result<Self> {
        let data = envelope::data_json(event).ok_or_else(|| BusError::Envelope {
            reason: "dead letter without data".into(),
        })?;
        serde_json::from_value(data).map_err(|e| BusError::Envelope {
            reason: format!("not a dead letter: {e}"),
        })
    }

    /// The rejected event as it arrived.
    pub fn original_event(&self) -> Result<Event> {
        serde_json::from_value(self.original.clone()).map_err(|e| BusError::Envelope {
            reason: format!("the kept original is not a CloudEvent: {e}"),
        })
    }
}
