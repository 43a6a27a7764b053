//! Subscribing: decode and validate what comes off a stream, and a durable pull consumer
//! that acknowledges only after the handler succeeded (so a failure means redelivery).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, AckKind};
use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};
use futures::StreamExt;
use tracing::{debug, warn};

use crate::envelope;
use crate::error::{BusError, Result};
use crate::schema::{SchemaRegistry, ValidationFailure};

/// An event read from a stream, with where it was stored.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub event: Event,
    pub stream: String,
    pub stream_sequence: u64,
    pub subject: String,
    /// When the server stored it.
    pub stored_at: DateTime<Utc>,
    /// How many times it was delivered (1 the first time).
    pub delivered: i64,
}

/// Decodes a message read by direct get as a CloudEvent (structured or binary) and, with a
/// registry, validates its data against the schema its `dataschema` names.
pub fn decode_stored(
    msg: &crate::reader::StoredMessage,
    registry: Option<&SchemaRegistry>,
) -> Result<ReceivedEvent> {
    let event = envelope::decode(Some(&msg.headers), &msg.payload)?;
    if let Some(registry) = registry {
        validate_event(registry, &event)?;
    }
    Ok(ReceivedEvent {
        event,
        stream: msg.stream.clone(),
        stream_sequence: msg.sequence,
        subject: msg.subject.clone(),
        stored_at: DateTime::parse_from_rfc3339(&msg.stored_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        delivered: 1,
    })
}

/// [`decode_stored`], for a message read through a consumer.
pub fn decode_message(
    msg: &jetstream::Message,
    registry: Option<&SchemaRegistry>,
) -> Result<ReceivedEvent> {
    let info = msg.info().map_err(|e| BusError::Envelope {
        reason: format!("not a JetStream message: {e}"),
    })?;
    let event = envelope::decode(msg.headers.as_ref(), &msg.payload)?;
    if let Some(registry) = registry {
        validate_event(registry, &event)?;
    }
    let stored_at = DateTime::<Utc>::from_timestamp(
        info.published.unix_timestamp(),
        info.published.nanosecond(),
    )
    .unwrap_or_default();
    Ok(ReceivedEvent {
        event,
        stream: info.stream.to_string(),
        stream_sequence: info.stream_sequence,
        subject: msg.subject.to_string(),
        stored_at,
        delivered: info.delivered,
    })
}

/// Validates an event's data against the schema named by its `dataschema`.
pub fn validate_event(registry: &SchemaRegistry, event: &Event) -> Result<()> {
    let schema = envelope::dataschema(event).ok_or_else(|| BusError::Envelope {
        reason: format!("event {} has no dataschema", event.id()),
    })?;
    let parsed;
    let data = match event.data() {
        Some(cloudevents::event::Data::Json(v)) => v,
        _ => {
            parsed = envelope::data_json(event).ok_or_else(|| BusError::Envelope {
                reason: format!("event {} has no JSON data", event.id()),
            })?;
            &parsed
        }
    };
    match registry.validate(&schema, data) {
        Ok(()) => Ok(()),
        Err(ValidationFailure::UnknownSchema) => Err(BusError::UnknownSchema {
            ty: event.ty().to_string(),
            version: None,
        }),
        Err(ValidationFailure::Violations(violations)) => Err(BusError::Invalid {
            ty: event.ty().to_string(),
            id: event.id().to_string(),
            violations,
            dead_letter: None,
        }),
    }
}

/// A durable pull consumer on one stream with subject filters.
///
/// # Examples
/// ```no_run
/// # async fn f(js: async_nats::jetstream::Context, registry: std::sync::Arc<lienthong_bus::SchemaRegistry>) -> lienthong_bus::Result<()> {
/// use lienthong_bus::Subscriber;
/// let sub = Subscriber::durable(&js, "FIELD_REPORTS", "agency-urban", vec!["egov.field_reports.>".into()], registry).await?;
/// sub.run(|ev| async move {
///     println!("{} {}", ev.stream_sequence, cloudevents::AttributesReader::ty(&ev.event));
///     Ok::<_, std::io::Error>(())
/// }, std::future::pending::<()>()).await?;
/// # Ok(()) }
/// ```
pub struct Subscriber {
    consumer: consumer::PullConsumer,
    registry: Arc<SchemaRegistry>,
    name: String,
}

impl Subscriber {
    /// Creates (or binds to) the durable consumer `durable` on `stream`.
    pub async fn durable(
        js: &jetstream::Context,
        stream: &str,
        durable: &str,
        filters: Vec<String>,
        registry: Arc<SchemaRegistry>,
    ) -> Result<Self> {
        let (filter_subject, filter_subjects) = match filters.len() {
            0 => (String::new(), Vec::new()),
            1 => (filters[0].clone(), Vec::new()),
            _ => (String::new(), filters),
        };
        let config = consumer::pull::Config {
            durable_name: Some(durable.to_string()),
            filter_subject,
            filter_subjects,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_deliver: -1,
            ..Default::default()
        };
        let consumer = js
            .create_consumer_on_stream(config, stream)
            .await
            .map_err(|e| BusError::nats(format!("creating consumer {durable} on {stream}"), e))?;
        Ok(Self {
            consumer,
            registry,
            name: durable.to_string(),
        })
    }

    /// Delivers every event to `handler` until `shutdown` completes. An event is
    /// acknowledged only when the handler returned `Ok`; on `Err` it is redelivered after
    /// a delay. A message that is not a valid event is logged and terminated (it stays in
    /// the stream for the auditors, but is not redelivered forever).
    pub async fn run<F, Fut, E>(
        &self,
        mut handler: F,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()>
    where
        F: FnMut(ReceivedEvent) -> Fut,
        Fut: Future<Output = std::result::Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut messages = self
            .consumer
            .messages()
            .await
            .map_err(|e| BusError::nats(format!("consuming {}", self.name), e))?;
        tokio::pin!(shutdown);
        loop {
            let msg = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                m = messages.next() => m,
            };
            let Some(msg) = msg else { return Ok(()) };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    warn!(consumer = %self.name, error = %e, "consumer error; continuing");
                    continue;
                }
            };
            match decode_message(&msg, Some(&self.registry)) {
                Ok(ev) => {
                    let seq = ev.stream_sequence;
                    match handler(ev).await {
                        Ok(()) => msg
                            .ack()
                            .await
                            .map_err(|e| BusError::nats(format!("acknowledging {seq}"), e))?,
                        Err(e) => {
                            warn!(consumer = %self.name, seq, error = %e, "handler failed; will be redelivered");
                            let _ = msg
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await;
                        }
                    }
                }
                Err(e) => {
                    warn!(consumer = %self.name, subject = %msg.subject, error = %e, "not a valid event; skipped");
                    let _ = msg.ack_with(AckKind::Term).await;
                }
            }
            debug!(consumer = %self.name, "processed");
        }
    }
}
