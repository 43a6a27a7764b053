//! Folding a stream into a projection: live (following the stream from the checkpoint) and
//! rebuild (into a fresh generation up to the head, then swap).
//!
//! Both read with an ordered consumer that starts right after the tree's checkpoint, and
//! commit each batch of events together with the new checkpoint. Nothing is acknowledged to
//! the server: the checkpoint in sled is the only position, so a crash at any point resumes
//! exactly after the last committed batch — never counting an event twice, never skipping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use lienthong_bus::envelope::Structured;
use lienthong_bus::subscriber::decode_message;
use lienthong_bus::SchemaRegistry;
use tracing::{debug, info, warn};

use crate::error::{ReplayError, Result};
use crate::projection::{ProjectedEvent, Projection};
use crate::store::{checkpoint, Changes, DecodedValues, ReadStore};

/// Most events committed in one batch.
pub const MAX_BATCH: usize = 1000;

/// Counters exposed under `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub applied: AtomicU64,
    pub skipped: AtomicU64,
    pub batches: AtomicU64,
}

/// Runs one projection against one stream.
#[derive(Clone)]
pub struct Runner {
    js: jetstream::Context,
    registry: Arc<SchemaRegistry>,
    store: ReadStore,
    projection: Arc<dyn Projection>,
    metrics: Arc<Metrics>,
    max_batch: usize,
}

/// When a fold stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Keep following (live).
    Forever,
    /// Stop once the stream's sequence `n` was applied (or nothing is left).
    Sequence(u64),
}

/// Where a point-in-time rebuild stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointInTime {
    /// Only events whose CloudEvents `time` (when it happened) is at or before this.
    pub as_of: Option<DateTime<Utc>>,
    /// Only stream sequences up to this one.
    pub until_seq: Option<u64>,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub projection: String,
    pub tree: String,
    pub events: u64,
    pub checkpoint: u64,
}

impl Runner {
    pub fn new(
        js: jetstream::Context,
        registry: Arc<SchemaRegistry>,
        store: ReadStore,
        projection: Arc<dyn Projection>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            js,
            registry,
            store,
            projection,
            metrics,
            max_batch: MAX_BATCH,
        }
    }

    /// At most `n` events per committed batch: smaller batches make new events visible
    /// sooner under load, larger ones fold faster.
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// Follows the stream into the served generation until `shutdown`. When a rebuild swaps
    /// generations, it continues from the new generation's own checkpoint.
    pub async fn follow(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let tree = self.store.current(self.projection.name())?;
            let name = self
                .store
                .current_name(self.projection.name())?
                .unwrap_or_default();
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.fold(&tree, Some(&name), Until::Forever, None, &|_, _| {}) => match r {
                    // The generation was swapped under us: follow the new one.
                    Ok(_) => continue,
                    Err(e) => {
                        warn!(projection = self.projection.name(), error = %e, "fold failed; retrying in 2 s");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                },
            }
        }
    }

    /// Builds a fresh generation from the start of the stream up to its current head,
    /// then serves it. `progress(done, total)` is called after each batch.
    pub async fn rebuild(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<Rebuilt> {
        self.rebuild_at(PointInTime::default(), progress).await
    }

    /// [`Runner::rebuild`] as of a past moment or sequence: the read model as it was then.
    pub async fn rebuild_at(
        &self,
        at: PointInTime,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Rebuilt> {
        let head = self.head().await?;
        let head = at.until_seq.map_or(head, |n| n.min(head));
        let (name, tree) = self.store.new_generation(self.projection.name())?;
        let events = self
            .fold(&tree, None, Until::Sequence(head), at.as_of, progress)
            .await?;
        self.store.set_point_in_time(self.projection.name(), &at)?;
        let cp = checkpoint(&tree)?;
        self.store.swap(self.projection.name(), &name)?;
        info!(projection = self.projection.name(), tree = %name, events, checkpoint = cp, "rebuilt and swapped");
        Ok(Rebuilt {
            projection: self.projection.name().to_string(),
            tree: name,
            events,
            checkpoint: cp,
        })
    }

    /// The read model this runner builds.
    pub fn projection_name(&self) -> &'static str {
        self.projection.name()
    }

    /// The stream's last sequence.
    pub async fn head(&self) -> Result<u64> {
        let mut stream = self
            .js
            .get_stream(self.projection.stream())
            .await
            .map_err(|e| ReplayError::Nats {
                operation: format!("opening stream {}", self.projection.stream()),
                reason: e.to_string(),
            })?;
        let info = stream.info().await.map_err(|e| ReplayError::Nats {
            operation: format!("reading stream {}", self.projection.stream()),
            reason: e.to_string(),
        })?;
        Ok(info.state.last_sequence)
    }

    /// Folds from the tree's checkpoint. Returns the number of events applied; returns early
    /// (Ok) when `generation` is no longer the one served.
    async fn fold(
        &self,
        tree: &sled::Tree,
        generation: Option<&str>,
        until: Until,
        as_of: Option<DateTime<Utc>>,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<u64> {
        let start = checkpoint(tree)?;
        if let Until::Sequence(target) = until {
            if start >= target {
                return Ok(0);
            }
        }
        let nats = |operation: &str, e: &dyn std::fmt::Display| ReplayError::Nats {
            operation: format!("{operation} {}", self.projection.stream()),
            reason: e.to_string(),
        };
        let stream = self
            .js
            .get_stream_no_info(self.projection.stream())
            .await
            .map_err(|e| nats("opening stream", &e))?;
        let filters = self.projection.filter_subjects();
        let (filter_subject, filter_subjects) = match filters.len() {
            0 => (String::new(), Vec::new()),
            1 => (filters[0].clone(), Vec::new()),
            _ => (String::new(), filters),
        };
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: if start == 0 {
                    consumer::DeliverPolicy::All
                } else {
                    consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: start + 1,
                    }
                },
                filter_subject,
                filter_subjects,
                ..Default::default()
            })
            .await
            .map_err(|e| nats("reading", &e))?;
        let messages = consumer.messages().await.map_err(|e| nats("reading", &e))?;
        // Decoding and validating (the costliest part per event) runs in its own task, a
        // batch ahead of the folding and committing here: on two cores they overlap.
        let (tx, mut decoded) = tokio::sync::mpsc::channel(DECODED_AHEAD);
        // Folded batches go back to the reader to be freed on the thread that allocated
        // them (cheaper for the allocator than freeing across threads).
        let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<DecodedMessage>>();
        let _reader = AbortOnDrop(tokio::spawn(read_ahead(
            messages,
            self.registry.clone(),
            self.max_batch,
            tx,
            spent_rx,
        )));
        let total = match until {
            Until::Sequence(t) => t,
            Until::Forever => 0,
        };
        let mut applied = 0u64;
        let mut last = start;
        let mut decoded_values = DecodedValues::new(DECODED_VALUES);
        loop {
            let Some(batch) = decoded.recv().await else {
                // The reader ended: the consumer's stream closed.
                return Ok(applied);
            };
            let mut batch = batch.map_err(|e| nats("reading", &e))?;
            // Folding fell behind: take what was decoded meanwhile into the same commit.
            while batch.len() < self.max_batch {
                match decoded.try_recv() {
                    Ok(more) => batch.extend(more.map_err(|e| nats("reading", &e))?),
                    Err(_) => break,
                }
            }
            let mut changes = Changes::with_decoded(tree, &mut decoded_values);
            let batch_start = last;
            let applied_before = applied;
            let mut pending = u64::MAX;
            let mut done = false;
            for item in &batch {
                if let Until::Sequence(target) = until {
                    if item.sequence > target {
                        done = true;
                        break;
                    }
                }
                last = item.sequence;
                pending = item.pending;
                match &item.event {
                    Ok(Some(ev)) => {
                        // Point in time: what happened later is not part of the picture.
                        if as_of.is_none_or(|t| ev.time.is_some_and(|e| e <= t)) {
                            self.projection.apply(&mut changes, ev)?;
                            applied += 1;
                        }
                    }
                    Ok(None) => {
                        self.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                        warn!(projection = self.projection.name(), seq = item.sequence, error = %e, "skipped an event that is not valid");
                    }
                }
            }
            let _ = spent.send(batch);
            if let Some(g) = generation {
                if self.store.current_name(self.projection.name())?.as_deref() != Some(g) {
                    debug!(
                        projection = self.projection.name(),
                        "generation swapped; switching"
                    );
                    return Ok(applied);
                }
            }
            if last > batch_start {
                changes.commit(last)?;
            }
            self.metrics
                .applied
                .fetch_add(applied - applied_before, Ordering::Relaxed);
            self.metrics.batches.fetch_add(1, Ordering::Relaxed);
            progress(last, total);
            if done {
                return Ok(applied);
            }
            if let Until::Sequence(target) = until {
                if last >= target || pending == 0 {
                    return Ok(applied);
                }
            }
        }
    }
}

/// Aggregates a fold keeps decoded between batches (a few MB at most).
const DECODED_VALUES: usize = 20_000;

/// Batches decoded ahead of the fold.
const DECODED_AHEAD: usize = 4;

/// One stored message, decoded and validated for a projection.
struct DecodedMessage {
    sequence: u64,
    /// Messages left in the consumer after this one.
    pending: u64,
    event: Result<Option<ProjectedEvent>, lienthong_bus::BusError>,
}

/// Stops the reader task when the fold returns, whichever way.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads what the consumer has (up to `max_batch` at a time, without waiting for more
/// than the first), decodes and validates it, and hands it on in stream order.
async fn read_ahead(
    mut messages: consumer::pull::Ordered,
    registry: Arc<SchemaRegistry>,
    max_batch: usize,
    tx: tokio::sync::mpsc::Sender<std::result::Result<Vec<DecodedMessage>, String>>,
    spent: std::sync::mpsc::Receiver<Vec<DecodedMessage>>,
) {
    // Receiving (which keeps the consumer's pull requests going) and decoding run as two
    // tasks, so the server is never kept waiting while a batch is decoded.
    let (raw_tx, mut raw_rx) =
        tokio::sync::mpsc::channel::<std::result::Result<Vec<jetstream::Message>, String>>(4);
    let decoder = AbortOnDrop(tokio::spawn(async move {
        while let Some(batch) = raw_rx.recv().await {
            while let Ok(folded) = spent.try_recv() {
                drop(folded);
            }
            let failed = batch.is_err();
            let decoded = batch.and_then(|b| {
                b.into_iter()
                    .map(|m| {
                        let info = m.info().map_err(|e| e.to_string())?;
                        Ok(DecodedMessage {
                            sequence: info.stream_sequence,
                            pending: info.pending,
                            event: project(&registry, &m, info.stream_sequence),
                        })
                    })
                    .collect()
            });
            if tx.send(decoded).await.is_err() || failed {
                return;
            }
        }
    }));
    loop {
        let batch = match messages.next().await {
            None => break,
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(first)) => {
                let mut batch = Vec::with_capacity(max_batch);
                batch.push(first);
                let mut result = Ok(());
                while batch.len() < max_batch {
                    match messages.next().now_or_never() {
                        Some(Some(Ok(m))) => batch.push(m),
                        Some(Some(Err(e))) => {
                            result = Err(e.to_string());
                            break;
                        }
                        _ => break,
                    }
                }
                result.map(|()| batch)
            }
        };
        let failed = batch.is_err();
        if raw_tx.send(batch).await.is_err() || failed {
            break;
        }
    }
    drop(raw_tx);
    // Let the decoder finish what it has (the fold may still want it).
    let mut decoder = decoder;
    let _ = (&mut decoder.0).await;
}

/// Decodes and validates one stored message for the projection. Structured mode (what
/// the bus writes) takes a borrowed fast path; binary mode the full CloudEvents decoder.
fn project(
    registry: &SchemaRegistry,
    msg: &jetstream::Message,
    sequence: u64,
) -> Result<Option<ProjectedEvent>, lienthong_bus::BusError> {
    let Some(read) = Structured::read(msg.headers.as_ref(), &msg.payload) else {
        return Ok(ProjectedEvent::from_received(decode_message(
            msg,
            Some(registry),
        )?));
    };
    let s = read?;
    let (Some(schema), Some(data)) = (s.dataschema.as_deref(), s.data) else {
        return Err(lienthong_bus::BusError::Envelope {
            reason: format!("event {} has no dataschema or no JSON data", s.id),
        });
    };
    match registry.validate(schema, &data) {
        Ok(()) => {}
        Err(lienthong_bus::schema::ValidationFailure::UnknownSchema) => {
            return Err(lienthong_bus::BusError::UnknownSchema {
                ty: s.ty.to_string(),
                version: None,
            })
        }
        Err(lienthong_bus::schema::ValidationFailure::Violations(violations)) => {
            return Err(lienthong_bus::BusError::Invalid {
                ty: s.ty.to_string(),
                id: s.id.to_string(),
                violations,
                dead_letter: None,
            })
        }
    }
    let stored_version = crate::upcast::version_of(schema).unwrap_or(1);
    let (version, data) = crate::upcast::upcast(&s.ty, stored_version, data);
    Ok(Some(ProjectedEvent {
        ty: s.ty.into_owned(),
        id: s.id.into_owned(),
        source: s.source.into_owned(),
        key: s.subject.map(|k| k.into_owned()),
        time: s
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc()),
        data,
        version,
        sequence,
    }))
}
