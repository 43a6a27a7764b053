//! The audit checkpoint writer (the replay service's part of auditing; verifying is
//! `lienthong_audit`'s): follows each audited stream, extends its chain, and writes a signed
//! checkpoint to `AUDIT` every `every` messages (or after `idle` without new ones). It resumes
//! from the last checkpoint in `AUDIT`, so it keeps no state of its own.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use lienthong_bus::{Classification, EventDraft, Publisher, SchemaRegistry, StreamReader};
use tracing::{info, warn};

use lienthong_audit::chain::{entry_of, genesis, Entry};
use lienthong_audit::checkpoint::{parse_head, Checkpoint};
use lienthong_audit::read::{checkpoint_type, last_checkpoint, read_from, stream_created};

use crate::error::{ReplayError, Result};

pub struct AuditWriter {
    reader: StreamReader,
    key: SigningKey,
    publisher: Publisher,
    every: usize,
    idle: Duration,
}

impl AuditWriter {
    /// `js` connects as a role allowed to publish `egov.audit.>` (the replay service).
    pub fn new(js: jetstream::Context, registry: Arc<SchemaRegistry>, key: SigningKey) -> Self {
        let publisher = Publisher::new(js.clone(), registry, "urn:lienthong:audit");
        Self {
            reader: StreamReader::new(js.client(), lienthong_bus::Refusals::none()),
            key,
            publisher,
            every: 1000,
            idle: Duration::from_secs(2),
        }
    }

    /// Checkpoint every `every` messages, or after `idle` without new messages.
    pub fn with_cadence(mut self, every: usize, idle: Duration) -> Self {
        self.every = every.max(1);
        self.idle = idle;
        self
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    async fn write(
        &self,
        stream: &str,
        created: &str,
        first_seq: u64,
        prev: [u8; 32],
        entries: &[Entry],
    ) -> Result<Checkpoint> {
        let c = Checkpoint::sign(&self.key, stream, created, first_seq, prev, entries);
        self.publish(&c).await?;
        Ok(c)
    }

    /// Writes checkpoint `c` of its stream to `AUDIT`.
    async fn publish(&self, c: &Checkpoint) -> Result<()> {
        let stream = &c.stream;
        // The head in the id: a chain resumed after a promotion reaches the same sequence
        // again with another head, which must not be taken for a repeat.
        let kind = if c.resumes.is_some() { "/resumed" } else { "" };
        self.publisher
            .publish(EventDraft::new(
                checkpoint_type(),
                format!("checkpoint/{stream}/{}{kind}/{}", c.last_seq, &c.head[..16]),
                stream.to_string(),
                c.signed_at,
                serde_json::to_value(c).map_err(|e| ReplayError::Corrupt {
                    key: stream.clone(),
                    reason: e.to_string(),
                })?,
                Classification::Public,
            ))
            .await?;
        Ok(())
    }

    /// When `AUDIT`'s checkpoints of `stream` record more than the stream now holds (a
    /// standby promoted after the centre was lost, holding less than the centre had
    /// checkpointed): writes the signed resumption that continues the chain after what is
    /// held, and returns it. `None` when nothing recorded is missing.
    pub async fn resume_after_loss(
        &self,
        stream: &str,
        reason: &str,
    ) -> Result<Option<Checkpoint>> {
        let (created, held_to) = stream_created(&self.reader, stream).await?;
        let checkpoints =
            lienthong_audit::verify::checkpoints_from_audit(&self.reader, stream).await?;
        let resumption = lienthong_audit::verify::resumption_for(
            stream,
            &created,
            checkpoints,
            &self.key,
            held_to,
            reason,
        )
        .map_err(|(_, seq, detail)| ReplayError::Corrupt {
            key: format!("{stream} checkpoints at {seq}"),
            reason: detail,
        })?;
        let Some(c) = resumption else {
            return Ok(None);
        };
        self.publish(&c).await?;
        Ok(Some(c))
    }

    /// Chains `stream` until `shutdown`, writing checkpoints as it goes.
    pub async fn follow(
        &self,
        stream: &str,
        until_head: bool,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<Checkpoint>> {
        tokio::pin!(shutdown);
        let (created, head_seq) = stream_created(&self.reader, stream).await?;
        let (mut next, mut head) = match last_checkpoint(&self.reader, stream).await? {
            Some((_, c)) => (
                c.last_seq + 1,
                parse_head(&c.head).unwrap_or_else(|| genesis(stream)),
            ),
            None => (1, genesis(stream)),
        };
        let mut written = Vec::new();
        if until_head && next > head_seq {
            return Ok(written);
        }
        let mut messages = read_from(&self.reader, stream, next, None, true);
        let mut pending: Vec<Entry> = Vec::new();
        let mut first = next;
        loop {
            let got = tokio::select! {
                _ = &mut shutdown => None,
                m = tokio::time::timeout(self.idle, messages.next()) => Some(m),
            };
            let flush = match got {
                None => {
                    if !pending.is_empty() {
                        let c = self.write(stream, &created, first, head, &pending).await?;
                        written.push(c);
                    }
                    return Ok(written);
                }
                Some(Err(_elapsed)) => !pending.is_empty(),
                Some(Ok(None)) => return Ok(written),
                Some(Ok(Some(Err(e)))) => {
                    return Err(ReplayError::Nats {
                        operation: format!("reading {stream}"),
                        reason: e.to_string(),
                    })
                }
                Some(Ok(Some(Ok(msg)))) => {
                    let Some((seq, entry)) = entry_of(&msg) else {
                        continue;
                    };
                    while next < seq {
                        // A sequence without a message: recorded as absent.
                        pending.push(Entry::ABSENT);
                        next += 1;
                    }
                    pending.push(entry);
                    next = seq + 1;
                    pending.len() >= self.every || (until_head && seq >= head_seq)
                }
            };
            if flush {
                let c = self.write(stream, &created, first, head, &pending).await?;
                head = parse_head(&c.head).unwrap_or(head);
                first = c.last_seq + 1;
                pending.clear();
                written.push(c);
                if until_head && first > head_seq {
                    return Ok(written);
                }
            }
        }
    }

    /// Writes checkpoints up to each stream's current head, then returns.
    pub async fn checkpoint_all(&self) -> Result<Vec<Checkpoint>> {
        let mut all = Vec::new();
        for s in lienthong_bus::registry::audited_streams() {
            all.extend(self.follow(s, true, std::future::pending()).await?);
        }
        Ok(all)
    }

    /// Follows every audited stream until `shutdown`; errors are logged and retried. A
    /// subsystem registered on the running bus is chained from its first event as soon as
    /// this process has read its registration.
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        info!(public_key = %self.public_key_hex(), streams = ?lienthong_bus::registry::audited_streams(), "audit checkpoints");
        let mut tasks = Vec::new();
        let mut followed = std::collections::BTreeSet::new();
        let mut stopping = shutdown.clone();
        let mut first = true;
        loop {
            for s in lienthong_bus::registry::audited_streams() {
                if followed.insert(s) {
                    if !first {
                        info!(stream = s, "a registered subsystem: its audit chain starts");
                    }
                    tasks.push(tokio::spawn(self.clone().chain(s, shutdown.clone())));
                }
            }
            first = false;
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }

    /// Follows `stream` until `shutdown`, starting again after an error.
    async fn chain(self: Arc<Self>, s: &'static str, rx: tokio::sync::watch::Receiver<bool>) {
        let mut rx = rx;
        loop {
            let stop = {
                let mut rx = rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            match self.follow(s, false, stop).await {
                Ok(_) => return,
                Err(e) => {
                    warn!(stream = s, error = %e, "audit chain interrupted; retrying in 2 s");
                    tokio::select! {
                        _ = rx.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
    }
}
