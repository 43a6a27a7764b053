//! The publisher: validate → envelope → publish with a deterministic `Nats-Msg-Id` → PubAck.
//!
//! Input that fails validation is written to the dead-letter stream with every violation
//! and is never published to the main stream. Timeouts and "no responders" are retried with
//! the same message id (so a retry can never store an event twice) with bounded backoff.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, context::PublishAckFuture};
use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, AttributesWriter, Event};
use serde_json::Value;
use tracing::{debug, warn};

use crate::dead_letter::DeadLetter;
use crate::envelope::{self, Classification};
use crate::error::{BusError, Result};
use crate::prepared::headers;
pub use crate::prepared::{message_id, Prepared, EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT};
use crate::schema::{SchemaRegistry, ValidationFailure};
use crate::subject::EventType;

mod pipelined;
pub use pipelined::{Outgoing, Ready, BURST};

/// What an adapter wants published; the publisher adds the source, schema and envelope.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub event_type: EventType,
    /// Deterministic from the subsystem record: the same record always gives the same id.
    pub id: String,
    /// The aggregate key (report id, document id, …), raw; the subject encodes it.
    pub key: String,
    /// When it happened in the subsystem.
    pub time: DateTime<Utc>,
    pub data: Value,
    pub classification: Classification,
    /// Schema version to validate against; the newest when `None`.
    pub schema_version: Option<u32>,
    pub traceparent: Option<String>,
    /// Publish only if the aggregate's last stored sequence is this (0: no event yet).
    pub expected_last_subject_sequence: Option<u64>,
}

impl EventDraft {
    /// A draft validated against the newest schema, without trace context or concurrency
    /// expectation (set those fields when needed).
    pub fn new(
        event_type: EventType,
        id: impl Into<String>,
        key: impl Into<String>,
        time: DateTime<Utc>,
        data: Value,
        classification: Classification,
    ) -> Self {
        Self {
            event_type,
            id: id.into(),
            key: key.into(),
            time,
            data,
            classification,
            schema_version: None,
            traceparent: None,
            expected_last_subject_sequence: None,
        }
    }
}

/// The server's confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub subject: String,
    pub stream: String,
    pub sequence: u64,
    /// True when the server had stored this source+id already (nothing new was stored).
    pub duplicate: bool,
}

/// Bounded retry with exponential backoff.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    registry: Arc<SchemaRegistry>,
    source: String,
    retry: RetryPolicy,
    /// The largest message the server takes, headers included.
    max_payload: usize,
    /// What the server refuses this connection: a refused publish fails at once.
    refusals: crate::access::Refusals,
    /// How large a buffer to encode the next event into.
    payload_hint: Arc<PayloadHint>,
}

/// The size of the payloads encoded lately: a maximum that decays, so that a buffer
/// sized by it rarely grows while one large event does not size every later one.
#[derive(Debug, Default)]
struct PayloadHint(std::sync::atomic::AtomicUsize);

impl PayloadHint {
    fn capacity(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed).max(256) + 64
    }

    fn saw(&self, len: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let hint = self.0.load(Relaxed);
        let decayed = hint - hint / 64;
        self.0.store(decayed.max(len), Relaxed);
    }
}

/// What the server takes when it does not say (nats-server's default).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

impl Publisher {
    /// A publisher whose events carry `source` (a URI naming the subsystem instance).
    pub fn new(
        js: jetstream::Context,
        registry: Arc<SchemaRegistry>,
        source: impl Into<String>,
    ) -> Self {
        let max_payload = match js.client().server_info().max_payload {
            0 => DEFAULT_MAX_PAYLOAD,
            n => n,
        };
        Self {
            js,
            registry,
            source: source.into(),
            retry: RetryPolicy::default(),
            max_payload,
            refusals: crate::access::Refusals::none(),
            payload_hint: Arc::default(),
        }
    }

    /// Watches the connection's refusals (from
    /// [`ConnectSettings::connect_watched`](crate::ConnectSettings::connect_watched)): a
    /// publish the server refuses fails at once with [`BusError::Forbidden`].
    pub fn with_refusals(mut self, refusals: crate::access::Refusals) -> Self {
        self.refusals = refusals;
        self
    }

    /// A refusal of the last seconds of publishing to one of `subjects`.
    pub(crate) fn refused(&self, subjects: &[&str]) -> Option<BusError> {
        self.refusals
            .recent(|r| subjects.contains(&r.subject.as_str()))
            .map(Into::into)
    }

    /// Waits for a PubAck, unless the server refuses the publish meanwhile.
    async fn confirmed(
        &self,
        p: &Prepared,
        fut: PublishAckFuture,
    ) -> Result<
        std::result::Result<
            async_nats::jetstream::publish::PublishAck,
            async_nats::jetstream::context::PublishError,
        >,
    > {
        self.refusals
            .guard_where(|r| r.subject == p.subject, async {
                Ok::<_, BusError>(fut.await)
            })
            .await
    }

    /// The largest message the server takes, headers included.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// A prepared event the server would refuse as too large, as a rejection (it goes to the
    /// DLQ, shortened): checked exactly only when the payload comes near the limit.
    fn check_size(&self, p: &Prepared) -> Option<BusError> {
        if p.payload.len() + 4096 < self.max_payload || p.size() <= self.max_payload {
            return None;
        }
        Some(BusError::TooLarge {
            what: format!("event {}", short(&p.id)),
            size: p.size(),
            max: self.max_payload,
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Validates, publishes and waits for the PubAck.
    ///
    /// # Errors
    /// [`BusError::Invalid`] (kept in the DLQ), [`BusError::Conflict`],
    /// [`BusError::Unavailable`] (retry later, same id), [`BusError::Refused`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn f(publisher: lienthong_bus::Publisher) -> lienthong_bus::Result<()> {
    /// use lienthong_bus::{EventDraft, EventType, Classification};
    /// let published = publisher.publish(EventDraft::new(
    ///     EventType::new("field_reports", "report", "submitted"),
    ///     "report/PT-2023-000981/submitted",
    ///     "PT-2023-000981",
    ///     chrono::Utc::now(),
    ///     serde_json::json!({ /* … */ }),
    ///     Classification::Public,
    /// )).await?;
    /// println!("stored at {}", published.sequence);
    /// # Ok(()) }
    /// ```
    pub async fn publish(&self, draft: EventDraft) -> Result<Published> {
        match self.prepare_draft(draft)? {
            Ok(prepared) => self.send(prepared).await,
            Err(Rejected { event, error }) => Err(self.dead_letter(*event, error).await),
        }
    }

    /// Publishes a complete CloudEvent (as the HTTP ingress receives it): the same checks.
    pub async fn publish_event(
        &self,
        event: Event,
        expected_last_subject_sequence: Option<u64>,
    ) -> Result<Published> {
        let prepared = match self.prepare(event, expected_last_subject_sequence) {
            Ok(p) => p,
            Err(Rejected { event, error }) => return Err(self.dead_letter(*event, error).await),
        };
        self.send(prepared).await
    }

    /// Publishes many events pipelined: every event is sent, then every PubAck awaited.
    /// Results come back in input order.
    pub async fn publish_many(&self, drafts: Vec<EventDraft>) -> Vec<Result<Published>> {
        let window = drafts.len();
        self.pipeline(drafts, window).await
    }

    /// Sends prepared events pipelined: every one sent, then every PubAck awaited; one not
    /// confirmed is sent again with the bounded retries of [`Publisher::send`] (same ids, so
    /// nothing is stored twice). Results in input order.
    pub async fn send_all(&self, prepared: Vec<Prepared>) -> Vec<Result<Published>> {
        let window = prepared.len();
        self.pipeline(prepared, window).await
    }

    /// The outcome of one sent event: its acknowledgement, or the retrying path when it was
    /// not sent (`None`) or not confirmed.
    async fn settle(&self, p: Prepared, fut: Option<PublishAckFuture>) -> Result<Published> {
        let Some(fut) = fut else {
            return self.send(p).await;
        };
        match self.confirmed(&p, fut).await {
            Err(forbidden) => Err(forbidden),
            Ok(Ok(ack)) => Ok(published(p, ack)),
            Ok(Err(e)) => match classify(&p, e) {
                Retry::Yes(_) => self.send(p).await,
                Retry::No(err) => Err(err),
                Retry::Later(reason) => Err(BusError::Unavailable {
                    operation: format!("publishing {} to {}", p.id, p.subject),
                    attempts: 1,
                    reason,
                }),
            },
        }
    }

    /// Checks a draft against its schema and encodes it, without building a CloudEvent
    /// first (the publishing hot path). A draft that fails validation comes back as the
    /// CloudEvent it would have been, with the reason, for the dead-letter stream.
    ///
    /// # Errors
    /// [`BusError::UnknownSchema`] when no schema is registered for the type (and version).
    pub fn prepare_draft(
        &self,
        draft: EventDraft,
    ) -> Result<std::result::Result<Prepared, Rejected>> {
        let ty = draft.event_type.name();
        let schema = self.registry.schema_id(&ty, draft.schema_version)?;
        if draft.id.is_empty()
            || draft.key.is_empty()
            || self.registry.validate(schema, &draft.data).is_err()
        {
            // The slow path builds the event and collects every violation.
            let expected = draft.expected_last_subject_sequence;
            let event = self.build(draft)?;
            return Ok(self.prepare(event, expected));
        }
        let mut payload = Vec::with_capacity(self.payload_hint.capacity());
        envelope::encode_parts(
            &mut payload,
            &draft.id,
            &self.source,
            &ty,
            &draft.key,
            &draft.time,
            schema,
            &draft.data,
            draft.classification,
            draft.traceparent.as_deref(),
        )?;
        self.payload_hint.saw(payload.len());
        let prepared = Prepared {
            subject: draft.event_type.subject(&draft.key),
            headers: headers(
                &self.source,
                &draft.id,
                &draft.event_type,
                &draft.key,
                draft.expected_last_subject_sequence,
            ),
            id: draft.id.clone(),
            payload: payload.into(),
        };
        if let Some(error) = self.check_size(&prepared) {
            return Ok(Err(Rejected {
                event: Box::new(self.build(draft)?),
                error,
            }));
        }
        Ok(Ok(prepared))
    }

    /// Builds the CloudEvent for a draft (source, subject, schema, extensions).
    pub fn build(&self, draft: EventDraft) -> Result<Event> {
        let ty = draft.event_type.to_string();
        let schema = self
            .registry
            .schema_id(&ty, draft.schema_version)?
            .to_string();
        envelope::build_event(
            &draft.id,
            &self.source,
            &ty,
            &draft.key,
            draft.time,
            &schema,
            draft.data,
            draft.classification,
            draft.traceparent.as_deref(),
        )
    }

    /// Checks an event against the contract and encodes it; what fails is handed back
    /// with the reason, for the dead-letter stream.
    pub fn prepare(
        &self,
        mut event: Event,
        expected: Option<u64>,
    ) -> std::result::Result<Prepared, Rejected> {
        let reject = |event: Event, error: BusError| Rejected {
            event: Box::new(event),
            error,
        };
        let ty = match EventType::parse(event.ty()) {
            Ok(t) => t,
            Err(e) => return Err(reject(event, e)),
        };
        let Some(key) = event
            .subject()
            .map(str::to_string)
            .filter(|k| !k.is_empty())
        else {
            let error = invalid(
                &event,
                "",
                "the `subject` attribute (the aggregate key) is required and must not be empty",
            );
            return Err(reject(event, error));
        };
        if event.id().is_empty() {
            let error = invalid(&event, "", "the `id` attribute must not be empty");
            return Err(reject(event, error));
        }
        let schema_id = match envelope::dataschema(&event) {
            Some(s) => {
                let registered = self.registry.is_schema_of(event.ty(), &s);
                if !registered {
                    let error = invalid(
                        &event,
                        "",
                        &format!(
                            "dataschema {s} is not a registered schema of {}",
                            event.ty()
                        ),
                    );
                    return Err(reject(event, error));
                }
                s
            }
            None => match self.registry.schema_id(event.ty(), None) {
                Ok(id) => {
                    let id = id.to_string();
                    if let Ok(url) = id.parse::<url::Url>() {
                        event.set_dataschema(Some(url));
                    }
                    id
                }
                Err(e) => return Err(reject(event, e)),
            },
        };
        let parsed;
        let data = match event.data() {
            Some(cloudevents::event::Data::Json(v)) => v,
            _ => match envelope::data_json(&event) {
                Some(v) => {
                    parsed = v;
                    &parsed
                }
                None => {
                    let error = invalid(&event, "", "data is missing or not JSON");
                    return Err(reject(event, error));
                }
            },
        };
        if let Err(failure) = self.registry.validate(&schema_id, data) {
            let violations = match failure {
                ValidationFailure::Violations(v) => v,
                ValidationFailure::UnknownSchema => {
                    vec![violation("", &format!("no schema {schema_id}"))]
                }
            };
            let error = BusError::Invalid {
                ty: event.ty().to_string(),
                id: event.id().to_string(),
                violations,
                dead_letter: None,
            };
            return Err(reject(event, error));
        }
        let payload = match envelope::encode_structured(&event) {
            Ok(p) => p,
            Err(e) => return Err(reject(event, e)),
        };
        let prepared = Prepared {
            id: event.id().to_string(),
            subject: ty.subject(&key),
            headers: headers(event.source().as_str(), event.id(), &ty, &key, expected),
            payload: payload.into(),
        };
        if let Some(error) = self.check_size(&prepared) {
            return Err(reject(event, error));
        }
        Ok(prepared)
    }

    /// Keeps rejected input in the DLQ and returns the error for the caller. When the DLQ
    /// itself cannot store, the caller gets `Unavailable` so that it retries rather than
    /// losing the input.
    pub async fn dead_letter(&self, event: Event, error: BusError) -> BusError {
        let letter = DeadLetter::from_rejection(&event, &error);
        match letter.prepare(&self.registry, self.max_payload) {
            Ok(prepared) => match self.send(prepared).await {
                Ok(p) => {
                    warn!(id = %short(event.id()), ty = %short(event.ty()), dlq_seq = p.sequence, error = %short(&error.to_string()), "rejected into the dead-letter stream");
                    match error {
                        BusError::Invalid {
                            ty, id, violations, ..
                        } => BusError::Invalid {
                            ty,
                            id,
                            violations,
                            dead_letter: Some(p.sequence),
                        },
                        other => BusError::Invalid {
                            ty: event.ty().to_string(),
                            id: event.id().to_string(),
                            violations: vec![violation("", &other.to_string())],
                            dead_letter: Some(p.sequence),
                        },
                    }
                }
                // Only what a retry can fix is `Unavailable`.
                Err(e) if e.is_transient() => BusError::Unavailable {
                    operation: format!("keeping rejected event {} in the DLQ", short(event.id())),
                    attempts: self.retry.attempts,
                    reason: e.to_string(),
                },
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    /// Keeps a dead letter built by the caller (e.g. an unreadable source record) in the DLQ.
    pub async fn keep_dead_letter(&self, letter: &DeadLetter) -> Result<Published> {
        self.send(letter.prepare(&self.registry, self.max_payload)?)
            .await
    }

    async fn send_once(
        &self,
        p: &Prepared,
    ) -> std::result::Result<PublishAckFuture, async_nats::jetstream::context::PublishError> {
        self.js
            .send_publish(
                p.subject.clone(),
                PublishMessage::build()
                    .payload(p.payload.clone())
                    .headers(p.headers.clone()),
            )
            .await
    }

    /// Sends with bounded retries on transient failures; the id stays the same.
    pub async fn send(&self, p: Prepared) -> Result<Published> {
        let mut backoff = self.retry.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            let result = match self.send_once(&p).await {
                Ok(fut) => self.confirmed(&p, fut).await?,
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => return Ok(published(p, ack)),
                Err(e) => match classify(&p, e) {
                    Retry::No(err) => return Err(err),
                    Retry::Later(reason) => {
                        return Err(BusError::Unavailable {
                            operation: format!("publishing {} to {}", p.id, p.subject),
                            attempts: attempt,
                            reason,
                        })
                    }
                    Retry::Yes(reason) => {
                        debug!(subject = %p.subject, attempt, %reason, "publish not confirmed, retrying");
                        last = reason;
                        if attempt < self.retry.attempts {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(self.retry.max_backoff);
                        }
                    }
                },
            }
        }
        Err(BusError::Unavailable {
            operation: format!("publishing {} to {}", p.id, p.subject),
            attempts: self.retry.attempts,
            reason: last,
        })
    }
}

/// An event the publisher would not send, with the reason.
#[derive(Debug)]
pub struct Rejected {
    pub event: Box<Event>,
    pub error: BusError,
}

enum Retry {
    Yes(String),
    No(BusError),
    /// The store is full: nothing to gain from retrying now; the sender is told at once to
    /// retry later.
    Later(String),
}

fn classify(p: &Prepared, e: async_nats::jetstream::context::PublishError) -> Retry {
    match e.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Retry::Yes(e.to_string()),
        // No responders: JetStream not (yet) answering for this subject.
        PublishErrorKind::StreamNotFound => Retry::Yes(format!(
            "no stream answered for {} (is the stream provisioned? `lienthong streams provision`)",
            p.subject
        )),
        PublishErrorKind::WrongLastSequence => {
            let expected = p
                .headers
                .get(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE)
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or_default();
            let filter = p
                .headers
                .get(EXPECTED_LAST_SUBJECT_SEQUENCE_SUBJECT)
                .map(|v| v.as_str().to_string())
                .unwrap_or_else(|| p.subject.clone());
            Retry::No(BusError::Conflict { filter, expected })
        }
        // The store is full (its disk, or its configured limit): nothing was stored; the
        // sender is told to retry once there is room.
        PublishErrorKind::Other if store_full(&e) => Retry::Later(format!(
            "the store is full ({e}): free space or raise the store's limit (--max-store)"
        )),
        PublishErrorKind::MaxPayloadExceeded => Retry::No(BusError::Refused {
            operation: format!("publishing {}", p.id),
            reason: e.to_string(),
        }),
        _ => Retry::No(BusError::Refused {
            operation: format!("publishing {} to {}", p.id, p.subject),
            reason: match std::error::Error::source(&e) {
                Some(s) => format!("{e}: {s}"),
                None => e.to_string(),
            },
        }),
    }
}

/// Whether JetStream refused a publish because its store is full: the server's or the
/// account's storage limit reached, or the store failing to write.
fn store_full(e: &async_nats::jetstream::context::PublishError) -> bool {
    use async_nats::jetstream::ErrorCode;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|j| {
            let code = j.error_code();
            [
                ErrorCode::INSUFFICIENT_RESOURCES,
                ErrorCode::STORAGE_RESOURCES_EXCEEDED,
                ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
            ]
            .contains(&code)
                // Any store failure has this code: only a lack of space counts.
                || (code == ErrorCode::STREAM_STORE_FAILED && {
                    let text = j.to_string().to_ascii_lowercase();
                    text.contains("no space") || text.contains("resources")
                })
        })
}

fn published(p: Prepared, ack: async_nats::jetstream::publish::PublishAck) -> Published {
    Published {
        id: p.id,
        subject: p.subject,
        stream: ack.stream,
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    }
}

/// How long [`Publisher::publish_pipelined`] waits for the next acknowledgement before it
/// sends what is still in flight again through the retrying path.
pub const PIPELINE_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An id short enough to name in a message.
fn short(id: &str) -> String {
    if id.chars().count() <= 200 {
        id.to_string()
    } else {
        format!("{}…", id.chars().take(200).collect::<String>())
    }
}

fn violation(pointer: &str, message: &str) -> crate::error::Violation {
    crate::error::Violation {
        pointer: pointer.to_string(),
        message: message.to_string(),
        schema_pointer: String::new(),
    }
}

fn invalid(event: &Event, pointer: &str, message: &str) -> BusError {
    BusError::Invalid {
        ty: event.ty().to_string(),
        id: event.id().to_string(),
        violations: vec![violation(pointer, message)],
        dead_letter: None,
    }
}
