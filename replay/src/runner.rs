//! Folding a stream into a projection: live (following the stream from the checkpoint) and
//! rebuild (into a fresh generation up to the head, then swap).
//!
//! Both read with an ordered consumer that starts right after the tree's checkpoint, and
//! commit each batch of events together with the new checkpoint. Receiving and decoding run
//! ahead of the fold in their own tasks ([`crate::decode`]), in stream order. Nothing is
//! acknowledged to the server: the checkpoint in sled is the only position, so a crash at any
//! point resumes exactly after the last committed batch — never counting an event twice,
//! never skipping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use lienthong_bus::SchemaRegistry;
use tracing::{debug, error, info, warn};

use crate::decode::{read_ahead, AbortOnDrop, DecodedMessage, DECODED_AHEAD};
use crate::error::{ReplayError, Result};
use crate::projection::Projection;
use crate::store::{checkpoint, Changes, DecodedValues, PointInTime, ReadStore};

/// How often a read model in alarm looks at its stream again.
const GUARD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a following read model checks that its stream is still the one it folds.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Most events committed in one batch.
pub const MAX_BATCH: usize = 1000;

/// Counters exposed under `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub applied: AtomicU64,
    pub skipped: AtomicU64,
    pub batches: AtomicU64,
    /// What the followers commit, for the dashboard's live feed.
    pub live: crate::dashboard::live::LiveFeed,
    /// Replay alarms raised now, by stream ([`crate::guard`]).
    pub alarms: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Replay alarms raised since start.
    pub alarms_raised: AtomicU64,
    /// Processor time of each stage of the folds, to see where a rebuild's time goes.
    pub cpu: StageCpu,
    /// The read models' store failed for a full disk: folding stopped until it is opened
    /// again ([`crate::service::serve`] watches the disk).
    pub store_full: std::sync::atomic::AtomicBool,
}

/// Processor time (ns, of the threads doing the work) each stage of a fold has used.
#[derive(Debug, Default)]
pub struct StageCpu {
    /// Decoding and validating what was received.
    pub decode: AtomicU64,
    /// Folding decoded events into batches of changes.
    pub fold: AtomicU64,
    /// Encoding and writing the batches with their checkpoints.
    pub commit: AtomicU64,
}

impl StageCpu {
    /// Runs `f`, adding the processor time this thread spent in it to `stage`.
    pub fn count<R>(stage: &AtomicU64, f: impl FnOnce() -> R) -> R {
        let start = thread_cpu_ns();
        let r = f();
        Self::add(stage, start);
        r
    }

    /// Adds to `stage` the processor time this thread spent since `start`
    /// ([`thread_cpu_ns`]).
    pub fn add(stage: &AtomicU64, start: u64) {
        stage.fetch_add(thread_cpu_ns().saturating_sub(start), Ordering::Relaxed);
    }

    /// `(decode, fold, commit)` in seconds.
    pub fn seconds(&self) -> (f64, f64, f64) {
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
        (s(&self.decode), s(&self.fold), s(&self.commit))
    }
}

/// This thread's processor time in ns (0 where the platform cannot say).
pub fn thread_cpu_ns() -> u64 {
    #[cfg(unix)]
    {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec for the call to fill.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
        }
    }
    0
}

impl Metrics {
    /// Raises (or keeps) the alarm of `stream`; logs and counts it when it is new.
    pub fn raise(&self, stream: &str, alarm: String) {
        let Ok(mut alarms) = self.alarms.lock() else {
            return;
        };
        if alarms.get(stream) != Some(&alarm) {
            error!(stream, %alarm, "replay alarm: the read model stops following the stream");
            self.alarms_raised.fetch_add(1, Ordering::Relaxed);
            alarms.insert(stream.to_string(), alarm);
        }
    }

    /// Ends the alarm of `stream`, if there was one.
    pub fn clear(&self, stream: &str) {
        if let Ok(mut alarms) = self.alarms.lock() {
            if alarms.remove(stream).is_some() {
                info!(
                    stream,
                    "replay alarm ended: the read model follows the stream again"
                );
            }
        }
    }

    /// The alarms raised now.
    pub fn current_alarms(&self) -> std::collections::BTreeMap<String, String> {
        self.alarms.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// Runs one projection against one stream.
#[derive(Clone)]
pub struct Runner {
    js: jetstream::Context,
    /// Reads by direct get instead of an ordered consumer (for a role that may not create
    /// consumers: the auditor checking a dataset).
    direct: Option<lienthong_bus::StreamReader>,
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
            direct: None,
            registry,
            store,
            projection,
            metrics,
            max_batch: MAX_BATCH,
        }
    }

    /// Reads with `reader` (batched direct get) instead of consumers: nothing is created on
    /// the server, so a read-only role (the auditor) can rebuild read models and datasets.
    pub fn reading_directly(mut self, reader: lienthong_bus::StreamReader) -> Self {
        self.direct = Some(reader);
        self
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
            let version = self.projection.version();
            if checkpoint(&tree)? == 0 {
                crate::store::set_version(&tree, version)?;
            } else if crate::store::version(&tree)? != version {
                info!(
                    projection = self.projection.name(),
                    from = crate::store::version(&tree)?,
                    to = version,
                    "the read model's shape changed; rebuilding it from the stream"
                );
                self.rebuild(&|_, _| {}).await?;
                continue;
            }
            let name = self
                .store
                .current_name(self.projection.name())?
                .unwrap_or_default();
            let stream = self.projection.stream();
            match self.guard(&tree).await {
                Ok(None) => self.metrics.clear(stream),
                Ok(Some(alarm)) => {
                    // Kept as it is until an operator rebuilds (a new generation).
                    self.metrics.raise(stream, alarm);
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(GUARD_EVERY) => continue,
                    }
                }
                Err(e) => {
                    warn!(projection = self.projection.name(), error = %e, "cannot read the stream's state; retrying in 2 s");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => continue,
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                // The stream changed under the fold: stop folding; the loop raises the alarm.
                _ = self.watch(&tree) => continue,
                r = self.fold(&tree, Some(&name), Until::Forever, None, &|_, _| {}) => match r {
                    // The generation was swapped under us: follow the new one.
                    Ok(_) => continue,
                    Err(e) if e.storage_full() => {
                        // sled keeps the error: nothing folds until the store is opened
                        // again, once there is room (the service's disk watch says so).
                        if !self.metrics.store_full.swap(true, Ordering::Relaxed) {
                            error!(projection = self.projection.name(), error = %e, "the read models' disk is full: folding stopped");
                        }
                        tokio::select! {
                            _ = &mut shutdown => return Ok(()),
                            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                        }
                    }
                    Err(e) => {
                        warn!(projection = self.projection.name(), error = %e, "fold failed; retrying in 2 s");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                },
            }
        }
    }

    /// Whether `tree` may go on folding its stream ([`crate::guard::check`]).
    async fn guard(&self, tree: &sled::Tree) -> Result<Option<String>> {
        let (created, last, messages, expected) = self.stream_state().await?;
        crate::guard::check(
            tree,
            self.projection.stream(),
            created,
            last,
            messages,
            expected,
        )
    }

    /// Returns once the stream is no longer the one `tree` folds (checked every second).
    async fn watch(&self, tree: &sled::Tree) {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if let Ok(Some(_)) = self.guard(tree).await {
                return;
            }
        }
    }

    /// The stream's creation time, last sequence, number of messages and how many it should
    /// hold ([`lienthong_bus::reader::StreamState::expected_messages`]).
    async fn stream_state(&self) -> Result<(Option<DateTime<Utc>>, u64, u64, u64)> {
        let nats = |e: &dyn std::fmt::Display| ReplayError::Nats {
            operation: format!("reading stream {}", self.projection.stream()),
            reason: e.to_string(),
        };
        if let Some(reader) = &self.direct {
            let state = reader
                .state(self.projection.stream())
                .await
                .map_err(|e| nats(&e))?;
            let expected = state.expected_messages(
                lienthong_bus::registry::admin::registered_age_limit(self.projection.stream()),
            );
            return Ok((state.created, state.last_sequence, state.messages, expected));
        }
        let mut stream = self
            .js
            .get_stream(self.projection.stream())
            .await
            .map_err(|e| nats(&e))?;
        let info = stream.info().await.map_err(|e| nats(&e))?;
        let created = i64::try_from(info.created.unix_timestamp_nanos())
            .ok()
            .map(DateTime::from_timestamp_nanos);
        let registered =
            lienthong_bus::registry::admin::registered_age_limit(self.projection.stream());
        let expected = if registered.is_zero() {
            info.state.last_sequence
        } else {
            (info.state.last_sequence + 1).saturating_sub(info.state.first_sequence.max(1))
        };
        Ok((
            created,
            info.state.last_sequence,
            info.state.messages,
            expected,
        ))
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
        let (created, head, _, _) = self.stream_state().await?;
        let head = at.until_seq.map_or(head, |n| n.min(head));
        let (name, tree) = self.store.new_generation(self.projection.name())?;
        if let Some(created) = created {
            crate::guard::set_stream_created(&tree, created)?;
        }
        let events = self
            .fold(&tree, None, Until::Sequence(head), at.as_of, progress)
            .await?;
        self.store.set_point_in_time(self.projection.name(), &at)?;
        crate::store::set_version(&tree, self.projection.version())?;
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
    /// The stream it folds.
    pub fn stream(&self) -> &'static str {
        self.projection.stream()
    }

    pub fn projection_name(&self) -> &'static str {
        self.projection.name()
    }

    /// The stream's last sequence.
    pub async fn head(&self) -> Result<u64> {
        Ok(self.stream_state().await?.1)
    }

    /// An ordered consumer on the stream from after `start`, with the projection's filters.
    async fn consumer(&self, start: u64) -> Result<consumer::pull::Ordered> {
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
        consumer.messages().await.map_err(|e| nats("reading", &e))
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
        // A pipeline: one task receives, one decodes and validates (the costliest part per
        // event), and this loop folds and commits — each a few batches ahead of the next.
        let (tx, mut decoded) = tokio::sync::mpsc::channel(DECODED_AHEAD);
        // Folded batches go back to the reader to be freed on the thread that allocated
        // them (cheaper for the allocator than freeing across threads).
        let (spent, spent_rx) = std::sync::mpsc::channel::<Vec<DecodedMessage>>();
        let _reader = match &self.direct {
            Some(reader) => AbortOnDrop(tokio::spawn(crate::decode::read_ahead_stored(
                reader.messages(
                    self.projection.stream(),
                    start + 1,
                    None,
                    until == Until::Forever,
                ),
                self.registry.clone(),
                self.max_batch,
                tx,
                self.metrics.clone(),
            ))),
            None => {
                let messages = self.consumer(start).await?;
                AbortOnDrop(tokio::spawn(read_ahead(
                    messages,
                    self.registry.clone(),
                    self.max_batch,
                    tx,
                    spent_rx,
                    self.metrics.clone(),
                )))
            }
        };
        let total = match until {
            Until::Sequence(t) => t,
            Until::Forever => 0,
        };
        let mut applied = 0u64;
        let mut last = start;
        let mut decoded_values = DecodedValues::new(DECODED_VALUES);
        let mut announced = Vec::new();
        loop {
            let Some(batch) = decoded.recv().await else {
                // The reader ended: the consumer's stream closed.
                return Ok(applied);
            };
            let mut batch = batch?;
            // Folding fell behind: take what was decoded meanwhile into the same commit.
            while batch.len() < self.max_batch {
                match decoded.try_recv() {
                    Ok(more) => batch.extend(more?),
                    Err(_) => break,
                }
            }
            // Following live: say what each commit folded (all of it when someone watches,
            // else the newest few, which a new watcher sees first).
            let following = until == Until::Forever;
            let announce = following && self.metrics.live.listening();
            let tail_from = batch.len().saturating_sub(crate::dashboard::live::RECENT);
            let mut changes = Changes::with_decoded(tree, &mut decoded_values);
            let batch_start = last;
            let applied_before = applied;
            let mut pending = u64::MAX;
            let mut done = false;
            let fold_started = thread_cpu_ns();
            for (i, item) in batch.iter().enumerate() {
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
                            if announce || (following && i >= tail_from) {
                                announced.push(crate::dashboard::live::LiveEvent::of(
                                    self.projection.stream(),
                                    ev,
                                ));
                            }
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
            StageCpu::add(&self.metrics.cpu.fold, fold_started);
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
                StageCpu::count(&self.metrics.cpu.commit, || changes.commit(last))?;
            }
            self.metrics.live.committed(announced.drain(..));
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
