//! Reading a stream without a consumer: batched direct get (server ≥ 2.11).
//!
//! A consumer is state on the server, and creating one is a change the auditor, read-only
//! everywhere, may not make. Direct get reads stored messages by sequence — up to a batch at
//! a time, optionally only those matching a subject filter — and leaves nothing behind, so
//! the auditor's tools, `tail` and `dlq list` read this way, under the same permission for
//! every role: `$JS.API.DIRECT.GET.<stream>`.

use std::time::Duration;

use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use crate::access::Refusals;
use crate::error::{BusError, Result};

/// Messages asked for at a time.
pub const BATCH: usize = 1000;

/// How long to wait for each message of a batch.
const WAIT: Duration = Duration::from_secs(5);

/// One stored message as direct get returns it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub stream: String,
    pub sequence: u64,
    pub subject: String,
    /// When the server stored it (RFC 3339).
    pub stored_at: String,
    /// Its own headers (and the `Nats-*` headers direct get adds).
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// A stream's state as `STREAM.INFO` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    pub last_sequence: u64,
    pub messages: u64,
    /// The first sequence it holds (1, or after what its age limit removed).
    pub first_sequence: u64,
    /// Its configured age limit (zero: none). What may expire is the registry's to say
    /// ([`crate::registry::admin::registered_age_limit`]), not this.
    pub max_age: std::time::Duration,
}

impl StreamState {
    /// How many messages it should hold: every sequence from its first, or, when the registry
    /// gives it an age limit (`registered_limit`), from the first it still holds (the limit
    /// removes the oldest). Fewer: some were lost or deleted.
    pub fn expected_messages(&self, registered_limit: std::time::Duration) -> u64 {
        let from = if registered_limit.is_zero() {
            1
        } else {
            self.first_sequence.max(1)
        };
        (self.last_sequence + 1).saturating_sub(from)
    }
}

impl StoredMessage {
    /// When the server stored it, in nanoseconds since the epoch.
    pub fn stored_ns(&self) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.stored_at)
            .ok()?
            .timestamp_nanos_opt()
    }
}

/// Reads streams by direct get, as the connection's role.
#[derive(Clone)]
pub struct StreamReader {
    client: Client,
    refusals: Refusals,
    /// `$JS.API`, or a domain's (`$JS.<domain>.API`).
    api: String,
}

/// What one batch returned, and whether more is stored after it.
#[derive(Debug)]
pub struct Batch {
    pub messages: Vec<StoredMessage>,
    /// Messages stored after the batch (matching the filter), when the server said.
    pub pending: u64,
}

impl StreamReader {
    pub fn new(client: Client, refusals: Refusals) -> Self {
        Self {
            client,
            refusals,
            api: "$JS.API".into(),
        }
    }

    /// Reads through another API prefix (a JetStream domain: `$JS.<domain>.API`).
    pub fn with_api_prefix(mut self, api: impl Into<String>) -> Self {
        self.api = api.into();
        self
    }

    /// The stream's last sequence (0 when empty).
    pub async fn last_sequence(&self, stream: &str) -> Result<u64> {
        Ok(self.state(stream).await?.last_sequence)
    }

    /// When the stream was created and its last sequence.
    pub async fn state(&self, stream: &str) -> Result<StreamState> {
        let subject = format!("{}.STREAM.INFO.{stream}", self.api);
        let reply = self
            .refusals
            .guard(async {
                tokio::time::timeout(WAIT, self.client.request(subject.clone(), Bytes::new()))
                    .await
                    .map_err(|_| unavailable(stream, "no answer to STREAM.INFO"))?
                    .map_err(|e| unavailable(stream, &e.to_string()))
            })
            .await?;
        let info: serde_json::Value = serde_json::from_slice(&reply.payload)
            .map_err(|e| BusError::nats(format!("reading the state of {stream}"), e))?;
        if let Some(err) = info.get("error") {
            return Err(BusError::Refused {
                operation: format!("reading stream {stream}"),
                reason: err
                    .get("description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("error")
                    .to_string(),
            });
        }
        let created = info["created"]
            .as_str()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&chrono::Utc));
        Ok(StreamState {
            created,
            last_sequence: info["state"]["last_seq"].as_u64().unwrap_or(0),
            messages: info["state"]["messages"].as_u64().unwrap_or(0),
            first_sequence: info["state"]["first_seq"].as_u64().unwrap_or(0),
            max_age: std::time::Duration::from_nanos(
                info["config"]["max_age"].as_u64().unwrap_or(0),
            ),
        })
    }

    /// The last message on `subject` (no wildcard), if any.
    pub async fn last_for_subject(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<StoredMessage>> {
        let request = format!("{}.DIRECT.GET.{stream}.{subject}", self.api);
        let msg = self
            .refusals
            .guard(async {
                tokio::time::timeout(WAIT, self.client.request(request.clone(), Bytes::new()))
                    .await
                    .map_err(|_| unavailable(stream, "no answer to a direct get"))?
                    .map_err(|e| unavailable(stream, &e.to_string()))
            })
            .await?;
        if let Some(status) = msg.status {
            return match u16::from(status) {
                404 => Ok(None),
                code => Err(BusError::Refused {
                    operation: format!("reading the last message on {subject} in {stream}"),
                    reason: format!("status {code} {}", msg.description.unwrap_or_default()),
                }),
            };
        }
        Ok(Some(stored(
            stream,
            msg.headers.unwrap_or_default(),
            msg.payload,
        )?))
    }

    /// Up to `max` messages from sequence `from` (matching `filter`, when given).
    pub async fn batch(
        &self,
        stream: &str,
        from: u64,
        filter: Option<&str>,
        max: usize,
    ) -> Result<Batch> {
        let mut request = json!({"seq": from.max(1), "batch": max.max(1)});
        if let Some(f) = filter {
            request["next_by_subj"] = json!(f);
        }
        let subject = format!("{}.DIRECT.GET.{stream}", self.api);
        let inbox = self.client.new_inbox();
        let work = async {
            let mut sub = self
                .client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| unavailable(stream, &e.to_string()))?;
            self.client
                .publish_with_reply(subject.clone(), inbox.clone(), request.to_string().into())
                .await
                .map_err(|e| unavailable(stream, &e.to_string()))?;
            let mut messages = Vec::new();
            loop {
                let msg = tokio::time::timeout(WAIT, sub.next())
                    .await
                    .map_err(|_| unavailable(stream, "a direct-get batch stopped short"))?
                    .ok_or_else(|| unavailable(stream, "the connection closed"))?;
                if let Some(status) = msg.status {
                    let code = u16::from(status);
                    let pending = header_u64(msg.headers.as_ref(), "Nats-Num-Pending");
                    return match code {
                        204 => Ok(Batch {
                            messages,
                            pending: pending.unwrap_or(0),
                        }),
                        404 => Ok(Batch {
                            messages,
                            pending: 0,
                        }),
                        408 | 503 => Err(unavailable(
                            stream,
                            &format!("status {code} {:?}", msg.description),
                        )),
                        _ => Err(BusError::Refused {
                            operation: format!("reading stream {stream}"),
                            reason: format!(
                                "status {code} {}",
                                msg.description.as_deref().unwrap_or("")
                            ),
                        }),
                    };
                }
                messages.push(stored(
                    stream,
                    msg.headers.unwrap_or_default(),
                    msg.payload,
                )?);
            }
        };
        self.refusals.guard(work).await
    }

    /// Every message from `from` through `until` (inclusive), in order, given to `each`
    /// batch by batch; stops early when `each` returns `false`.
    pub async fn scan(
        &self,
        stream: &str,
        from: u64,
        until: u64,
        filter: Option<&str>,
        mut each: impl FnMut(StoredMessage) -> bool,
    ) -> Result<()> {
        let mut next = from.max(1);
        while next <= until {
            let batch = self.batch(stream, next, filter, BATCH).await?;
            let Some(last) = batch.messages.last().map(|m| m.sequence) else {
                return Ok(());
            };
            for m in batch.messages {
                if m.sequence > until {
                    return Ok(());
                }
                if !each(m) {
                    return Ok(());
                }
            }
            if batch.pending == 0 {
                return Ok(());
            }
            next = last + 1;
        }
        Ok(())
    }

    /// Every message stored now (through the last sequence when called), in order.
    pub async fn read_all(&self, stream: &str, filter: Option<&str>) -> Result<Vec<StoredMessage>> {
        let last = self.last_sequence(stream).await?;
        let mut out = Vec::new();
        self.scan(stream, 1, last, filter, |m| {
            out.push(m);
            true
        })
        .await?;
        Ok(out)
    }
}

/// A direct-get reply as the stored message it carries.
fn stored(stream: &str, headers: HeaderMap, payload: Bytes) -> Result<StoredMessage> {
    let sequence = header_u64(Some(&headers), "Nats-Sequence").ok_or_else(|| {
        BusError::nats(
            format!("reading {stream}"),
            "a direct-get reply without Nats-Sequence (is allow_direct set?)",
        )
    })?;
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default()
    };
    Ok(StoredMessage {
        stream: stream.to_string(),
        sequence,
        subject: text("Nats-Subject"),
        stored_at: text("Nats-Time-Stamp"),
        headers,
        payload,
    })
}

/// How often a followed stream is asked again when nothing new was there.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

impl StreamReader {
    /// The stream's messages from `from` in order, as a stream of messages; it ends at the
    /// end of what is stored unless `follow`, then waits for more.
    pub fn messages(
        &self,
        stream: &str,
        from: u64,
        filter: Option<String>,
        follow: bool,
    ) -> futures::stream::BoxStream<'static, Result<StoredMessage>> {
        struct State {
            reader: StreamReader,
            stream: String,
            next: u64,
            filter: Option<String>,
            buffer: std::collections::VecDeque<StoredMessage>,
            ended: bool,
        }
        let state = State {
            reader: self.clone(),
            stream: stream.to_string(),
            next: from.max(1),
            filter,
            buffer: Default::default(),
            ended: false,
        };
        futures::stream::unfold(state, move |mut st| async move {
            loop {
                if let Some(m) = st.buffer.pop_front() {
                    st.next = m.sequence + 1;
                    return Some((Ok(m), st));
                }
                if st.ended {
                    return None;
                }
                match st
                    .reader
                    .batch(&st.stream, st.next, st.filter.as_deref(), BATCH)
                    .await
                {
                    Err(e) => {
                        st.ended = true;
                        return Some((Err(e), st));
                    }
                    Ok(b) if b.messages.is_empty() => {
                        if !follow {
                            return None;
                        }
                        tokio::time::sleep(FOLLOW_POLL).await;
                    }
                    Ok(b) => {
                        if b.pending == 0 && !follow {
                            st.ended = true;
                        }
                        st.buffer.extend(b.messages);
                    }
                }
            }
        })
        .fuse()
        .boxed()
    }
}

fn header_u64(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    headers?.get(name)?.as_str().parse().ok()
}

fn unavailable(stream: &str, reason: &str) -> BusError {
    BusError::Unavailable {
        operation: format!("reading stream {stream}"),
        attempts: 1,
        reason: reason.to_string(),
    }
}
