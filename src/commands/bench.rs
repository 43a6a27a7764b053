//! `lienthong bench`: the bus against the raw engine, in one run, on this machine.
//!
//! Starts its own nats-server (the project's `nats.conf`, a temporary store) and uses the
//! same realistic payloads for both sides — the demo city's field reports and documents:
//! - publish: plain async-nats JetStream publish (pipelined in windows of 256, every PubAck
//!   awaited) vs the bus publisher (validation, envelope, dedupe id, PubAck), same windows;
//!   also raw with the bus's headers (what the server's duplicate check costs) and the bus
//!   in atomic batches;
//! - replay: a raw drain of the streams with an ordered consumer vs a full rebuild of the
//!   field-reports and documents read models in sled, checkpoints included;
//! - validation: the cost of validating one event's data (p50);
//! - end to end: publish → visible in the read model, at a steady rate (p50, p99);
//! - memory: peak RSS of `lienthong replay rebuild` (a child process, which reports its own
//!   high-water mark) over ≥ 1,000,000 events;
//! - durable mode: a second server with `sync_interval: always`, naive pipelined publishing
//!   vs atomic batches of 1,000.
//!
//! Ratios are medians over `--runs`. Nothing here is a pass/fail test: the targets are shown
//! beside the figures. `--only PART` measures one part (while working on it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use lienthong_adapters::demo;
use lienthong_bus::batch::MAX_ATOMIC_BATCH;
use lienthong_bus::publisher::Prepared;
use lienthong_bus::{CredentialSet, EventDraft, NatsServer, Publisher};
use lienthong_replay::{Metrics, ReadStore};
use serde_json::json;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events per publish run (and in the replay comparison, times --runs).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events in the stream for the memory measurement of a rebuild.
    #[arg(long, default_value_t = 1_000_000)]
    rss_events: usize,
    /// Runs of each comparison; ratios are their median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Steady rate (events/s) and duration (s) of the end-to-end latency measurement.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 5)]
    e2e_seconds: u64,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Events per durable-mode run (naive and atomic batches each).
    #[arg(long, default_value_t = 20_000)]
    durable_events: usize,
    /// Measure only these parts (for working on one of them); all when not given.
    #[arg(long, value_enum)]
    only: Vec<Part>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Publish,
    Replay,
    Validate,
    E2e,
    Rss,
    Durable,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Drafts cycling through the city's events, each with a unique id for `run`.
fn drafts(base: &[EventDraft], n: usize, run: &str) -> Vec<EventDraft> {
    (0..n)
        .map(|i| {
            let mut d = base[i % base.len()].clone();
            d.id = format!("{}#{run}-{i}", d.id);
            d
        })
        .collect()
}

/// Plain JetStream publishing of the encoded events; with `headers`, also the bus's headers
/// (content type and `Nats-Msg-Id`, which makes the server check for duplicates).
async fn raw_publish(
    js: &jetstream::Context,
    prepared: &[Prepared],
    headers: bool,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    for window in prepared.chunks(256) {
        let mut acks = Vec::with_capacity(window.len());
        for p in window {
            let subject = format!("bench.raw.{}{}", if headers { "h." } else { "" }, p.subject);
            acks.push(if headers {
                js.send_publish(
                    subject,
                    async_nats::jetstream::message::PublishMessage::build()
                        .payload(p.payload.clone())
                        .headers(p.headers.clone()),
                )
                .await?
            } else {
                js.publish(subject, p.payload.clone()).await?
            });
        }
        for a in acks {
            a.await?;
        }
    }
    Ok(prepared.len() as f64 / start.elapsed().as_secs_f64())
}

async fn bus_publish(publisher: &Publisher, drafts: Vec<EventDraft>) -> anyhow::Result<f64> {
    let n = drafts.len();
    let start = Instant::now();
    let mut drafts = drafts.into_iter().peekable();
    while drafts.peek().is_some() {
        let window: Vec<EventDraft> = drafts.by_ref().take(256).collect();
        for r in publisher.publish_many(window).await {
            r?;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The bus publisher in atomic batches of 1,000 (what adapters use for their pages and
/// backfills): every event validated and encoded, one acknowledgement per batch.
async fn bus_publish_batched(
    publisher: &Publisher,
    drafts: Vec<EventDraft>,
) -> anyhow::Result<f64> {
    let n = drafts.len();
    let start = Instant::now();
    for r in publisher.publish_batched(drafts, MAX_ATOMIC_BATCH).await {
        r?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn drain(js: &jetstream::Context, streams: &[&str]) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let mut n = 0u64;
    for s in streams {
        let mut st = js.get_stream(*s).await?;
        let last = st.info().await?.state.last_sequence;
        if last == 0 {
            continue;
        }
        let c = st
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await?;
        let mut msgs = c.messages().await?;
        while let Some(m) = msgs.next().await {
            let m = m?;
            n += 1;
            if m.info().map(|i| i.stream_sequence >= last).unwrap_or(true) {
                break;
            }
        }
    }
    Ok((n, n as f64 / start.elapsed().as_secs_f64()))
}

async fn replay(
    js: &jetstream::Context,
    global: &Global,
    projections: &[&str],
) -> anyhow::Result<(u64, f64)> {
    let dir = tempfile::tempdir()?;
    let store = ReadStore::open(dir.path())?;
    let registry = global.registry()?;
    let metrics = Arc::new(Metrics::default());
    let start = Instant::now();
    let mut n = 0;
    for r in lienthong_replay::service::runners(js, &registry, &store, &metrics) {
        if projections.contains(&r.projection_name()) {
            n += r.rebuild(&|_, _| {}).await?.events;
        }
    }
    Ok((n, n as f64 / start.elapsed().as_secs_f64()))
}

/// One line of the table: a figure, its target when it has one, and whether it is met.
struct Row {
    name: String,
    value: String,
    target: &'static str,
    met: Option<bool>,
}

fn row(name: impl Into<String>, value: String, target: &'static str, met: Option<bool>) -> Row {
    Row {
        name: name.into(),
        value,
        target,
        met,
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let wants = |p: Part| a.only.is_empty() || a.only.contains(&p);
    let creds = CredentialSet::generate();
    let server = NatsServer::start_ephemeral(&creds).await?;
    let url = server.url();
    let js_as = |role: &'static str| {
        let s = creds.settings(role, &url);
        async move {
            anyhow::Ok(jetstream::new(
                s?.connect(&format!("lienthong-bench-{role}")).await?,
            ))
        }
    };
    let operator = js_as("operator").await?;
    fresh_streams(&operator).await?;
    let registry = global.registry()?;
    let city = demo::generate(2023, 1.0, 2023);
    let base = lienthong_adapters::demo_events::field_report_and_document_events(&city);
    eprintln!("bench: {} distinct field-report and document events from the demo city; nats-server at {url}", base.len());
    let publisher = Publisher::new(operator.clone(), registry.clone(), "urn:lienthong:bench");
    let mut figures = serde_json::Map::new();
    figures.insert("events".into(), json!(a.events));
    figures.insert("runs".into(), json!(a.runs));
    let mut rows: Vec<Row> = Vec::new();

    // Publish: raw vs bus, alternating, same payloads.
    if wants(Part::Publish) {
        let (mut raw_rates, mut bus_rates, mut raw_header_rates, mut batched_rates) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..a.runs {
            // Every run starts from empty streams on both sides: the server's memory of
            // message ids (what the duplicate check searches) grows with each run otherwise.
            if run > 0 {
                fresh_streams(&operator).await?;
            }
            let ds = drafts(&base, a.events, &format!("p{run}"));
            let prepared = prepare_all(&publisher, &ds)?;
            let raw = raw_publish(&operator, &prepared, false).await?;
            let bus = bus_publish(&publisher, ds).await?;
            let raw_headers = raw_publish(&operator, &prepared, true).await?;
            let batched =
                bus_publish_batched(&publisher, drafts(&base, a.events, &format!("pb{run}")))
                    .await?;
            eprintln!(
                "bench: publish run {}: raw {raw:.0}/s, bus {bus:.0}/s, bus in atomic batches {batched:.0}/s (raw with the bus's headers {raw_headers:.0}/s)",
                run + 1
            );
            batched_rates.push(batched);
            raw_rates.push(raw);
            bus_rates.push(bus);
            raw_header_rates.push(raw_headers);
        }
        let ratio = median(
            raw_rates
                .iter()
                .zip(&bus_rates)
                .map(|(r, b)| b / r)
                .collect(),
        );
        let (raw, bus) = (median(raw_rates.clone()), median(bus_rates.clone()));
        // What the contract's headers cost the server (the ceiling of any publisher that
        // sends them), and the bus against that.
        let ceiling = median(
            raw_rates
                .iter()
                .zip(&raw_header_rates)
                .map(|(r, h)| h / r)
                .collect(),
        );
        let raw_headers = median(raw_header_rates.clone());
        let same_headers = median(
            raw_header_rates
                .iter()
                .zip(&bus_rates)
                .map(|(h, b)| b / h)
                .collect(),
        );
        let batched = median(batched_rates);
        figures.insert("publish_raw_per_s".into(), json!(raw.round()));
        figures.insert("publish_headers_ceiling".into(), json!(round(ceiling, 3)));
        figures.insert(
            "publish_ratio_same_headers".into(),
            json!(round(same_headers, 3)),
        );
        figures.insert("publish_bus_batched_per_s".into(), json!(batched.round()));
        figures.insert(
            "publish_raw_with_headers_per_s".into(),
            json!(raw_headers.round()),
        );
        figures.insert("publish_bus_per_s".into(), json!(bus.round()));
        figures.insert("publish_ratio".into(), json!(round(ratio, 3)));
        rows.push(row(
            "publish, raw async-nats (events/s)",
            format!("{raw:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "  raw with the bus's headers (dedupe id)",
            format!("{raw_headers:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "publish, bus publisher (events/s)",
            format!("{bus:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "publish ratio",
            format!("{ratio:.3}"),
            ">= 0.90",
            Some(ratio >= 0.9),
        ));
        rows.push(row(
            "  raw with headers / raw (ceiling)",
            format!("{ceiling:.3}"),
            "",
            None,
        ));
        rows.push(row(
            "  bus / raw with the same headers",
            format!("{same_headers:.3}"),
            "",
            None,
        ));
        rows.push(row(
            "publish, bus in atomic batches (events/s)",
            format!("{batched:.0}"),
            "",
            None,
        ));
    }

    // Replay: raw drain vs rebuild of the read models, over the same streams.
    let replay_js = js_as("replay").await?;
    if wants(Part::Replay) {
        fill(&operator, &publisher, &base, a.events * a.runs).await?;
        let (mut raw_drains, mut rebuilds, mut replayed) = (Vec::new(), Vec::new(), 0);
        for run in 0..a.runs {
            let (n, raw) = drain(&replay_js, &["FIELD_REPORTS", "DOCUMENTS"]).await?;
            let (m, bus) = replay(&replay_js, global, &["field_reports", "documents"]).await?;
            eprintln!(
                "bench: replay run {}: raw drain {raw:.0}/s ({n}), rebuild {bus:.0}/s ({m})",
                run + 1
            );
            raw_drains.push(raw);
            rebuilds.push(bus);
            replayed = n;
        }
        let ratio = median(
            raw_drains
                .iter()
                .zip(&rebuilds)
                .map(|(r, b)| b / r)
                .collect(),
        );
        let (raw, bus) = (median(raw_drains), median(rebuilds));
        figures.insert("replay_events".into(), json!(replayed));
        figures.insert("replay_raw_per_s".into(), json!(raw.round()));
        figures.insert("replay_bus_per_s".into(), json!(bus.round()));
        figures.insert("replay_ratio".into(), json!(round(ratio, 3)));
        rows.push(row(
            "replay, raw drain (events/s)",
            format!("{raw:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "replay, rebuild into sled (events/s)",
            format!("{bus:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "replay ratio",
            format!("{ratio:.3}"),
            ">= 0.60",
            Some(ratio >= 0.6),
        ));
    }

    // Validation cost per event.
    if wants(Part::Validate) {
        let mut ns: Vec<f64> = Vec::with_capacity(20_000);
        for d in base.iter().cycle().take(20_000) {
            let id = registry.schema_id(&d.event_type.to_string(), None)?;
            let t = Instant::now();
            let ok = registry.validate(id, &d.data).is_ok();
            ns.push(t.elapsed().as_nanos() as f64);
            anyhow::ensure!(ok, "a demo event does not validate");
        }
        ns.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&ns, 0.5), percentile(&ns, 0.99));
        figures.insert("validate_ns_p50".into(), json!(p50.round()));
        figures.insert("validate_ns_p99".into(), json!(p99.round()));
        rows.push(row(
            "validation p50 (ns/event)",
            format!("{p50:.0}"),
            "<= 2000",
            Some(p50 <= 2000.0),
        ));
    }

    // End to end at a steady rate: publish → visible in the read model (checkpoint reached).
    if wants(Part::E2e) {
        let (p50, p99, n) =
            end_to_end(&replay_js, &publisher, global, &base, a.rate, a.e2e_seconds).await?;
        figures.insert("e2e_rate_per_s".into(), json!(a.rate));
        figures.insert("e2e_samples".into(), json!(n));
        figures.insert("e2e_ms_p50".into(), json!(round(p50, 2)));
        figures.insert("e2e_ms_p99".into(), json!(round(p99, 2)));
        rows.push(row(
            format!("end to end p50 at {}/s (ms)", a.rate),
            format!("{p50:.2}"),
            "",
            None,
        ));
        rows.push(row(
            format!("end to end p99 at {}/s (ms)", a.rate),
            format!("{p99:.2}"),
            "<= 25",
            Some(p99 <= 25.0),
        ));
    }

    // Memory of a rebuild over ≥ rss_events, in a child process.
    if wants(Part::Rss) {
        let (rss_mb, events, rate) =
            rebuild_rss(&operator, &publisher, &base, a.rss_events, &creds, &url).await?;
        figures.insert("replay_rss_mb".into(), json!(round(rss_mb, 1)));
        figures.insert("replay_rss_events".into(), json!(events));
        figures.insert("replay_rss_rebuild_per_s".into(), json!(rate.round()));
        rows.push(row(
            format!("rebuild peak RSS, {events} events (MB)"),
            format!("{rss_mb:.1}"),
            "<= 200",
            Some(rss_mb <= 200.0 && events >= 1_000_000),
        ));
    }
    server.stop().await?;

    // Durable mode: every PubAck on disk. Naive pipelined publishing vs atomic batches.
    if wants(Part::Durable) {
        let (naive, batched) = durable(global, &base, a.durable_events, a.runs).await?;
        let speedup = batched / naive;
        figures.insert("durable_events".into(), json!(a.durable_events));
        figures.insert("durable_naive_per_s".into(), json!(naive.round()));
        figures.insert("durable_batched_per_s".into(), json!(batched.round()));
        figures.insert("durable_batch_speedup".into(), json!(round(speedup, 2)));
        rows.push(row(
            "durable, naive pipelined (events/s)",
            format!("{naive:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "durable, atomic batches (events/s)",
            format!("{batched:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "durable speed-up of atomic batches",
            format!("{speedup:.2}x"),
            ">= 5x",
            Some(speedup >= 5.0),
        ));
    }

    println!("{:<40} {:>14}   {:<10}", "measure", "value", "target");
    for r in &rows {
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "",
        };
        println!("{:<40} {:>14}   {:<10} {met}", r.name, r.value, r.target);
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The contract's streams and the raw side's `BENCH_RAW`, empty.
async fn fresh_streams(operator: &jetstream::Context) -> anyhow::Result<()> {
    for name in ["BENCH_RAW", "FIELD_REPORTS", "DOCUMENTS"] {
        if operator.get_stream(name).await.is_ok() {
            operator.delete_stream(name).await?;
        }
    }
    lienthong_bus::provision(operator).await?;
    operator
        .create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            // As the bus's streams: the server remembers message ids for 2 h.
            duplicate_window: lienthong_bus::topology::DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Builds, validates and encodes drafts once (for the raw side, which only sends).
fn prepare_all(publisher: &Publisher, ds: &[EventDraft]) -> anyhow::Result<Vec<Prepared>> {
    ds.iter()
        .map(|d| {
            publisher
                .prepare(publisher.build(d.clone())?, None)
                .map_err(|r| anyhow::anyhow!("{}", r.error))
        })
        .collect()
}

/// A durable server (`sync_interval: always`): the same events published naively (pipelined
/// windows of 256, one PubAck each) and in atomic batches of 1,000; median rates.
async fn durable(
    global: &Global,
    base: &[EventDraft],
    events: usize,
    runs: usize,
) -> anyhow::Result<(f64, f64)> {
    let creds = CredentialSet::generate();
    let server = NatsServer::start_ephemeral_with(&creds, true).await?;
    let js = jetstream::new(
        creds
            .settings("operator", &server.url())?
            .connect("lienthong-bench-durable")
            .await?,
    );
    lienthong_bus::provision(&js).await?;
    let publisher = Publisher::new(js, global.registry()?, "urn:lienthong:bench");
    let (mut naive, mut batched) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let n = bus_publish(&publisher, drafts(base, events, &format!("dn{run}"))).await?;
        let ds = drafts(base, events, &format!("db{run}"));
        let start = Instant::now();
        for r in publisher.publish_batched(ds, MAX_ATOMIC_BATCH).await {
            r?;
        }
        let b = events as f64 / start.elapsed().as_secs_f64();
        eprintln!(
            "bench: durable run {}: naive {n:.0}/s, atomic batches {b:.0}/s",
            run + 1
        );
        naive.push(n);
        batched.push(b);
    }
    server.stop().await?;
    Ok((median(naive), median(batched)))
}

/// Fills the field-report and document streams up to `n` events (prepared once, sent raw).
async fn fill(
    operator: &jetstream::Context,
    publisher: &Publisher,
    base: &[EventDraft],
    n: usize,
) -> anyhow::Result<()> {
    let mut have = 0;
    for s in ["FIELD_REPORTS", "DOCUMENTS"] {
        have += operator.get_stream(s).await?.info().await?.state.messages as usize;
    }
    if have >= n {
        return Ok(());
    }
    let missing = n - have;
    eprintln!("bench: filling the streams to {n} events");
    for chunk_start in (0..missing).step_by(10_000) {
        let ds = drafts(
            base,
            (missing - chunk_start).min(10_000),
            &format!("fill{have}-{chunk_start}"),
        );
        let mut acks = Vec::new();
        for p in prepare_all(publisher, &ds)? {
            acks.push(
                operator
                    .send_publish(
                        p.subject,
                        async_nats::jetstream::message::PublishMessage::build()
                            .payload(p.payload)
                            .headers(p.headers),
                    )
                    .await?,
            );
            if acks.len() >= 256 {
                for a in acks.drain(..) {
                    a.await?;
                }
            }
        }
        for a in acks {
            a.await?;
        }
    }
    Ok(())
}

async fn end_to_end(
    js: &jetstream::Context,
    publisher: &Publisher,
    global: &Global,
    base: &[EventDraft],
    rate: u64,
    seconds: u64,
) -> anyhow::Result<(f64, f64, usize)> {
    let dir = tempfile::tempdir()?;
    let store = ReadStore::open(dir.path())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let service = tokio::spawn(lienthong_replay::service::serve(
        listener,
        Some(js.clone()),
        global.registry()?,
        store.clone(),
        Default::default(),
        async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|s| *s).await;
        },
    ));
    // Caught up with what is there already.
    let trees = [
        ("FIELD_REPORTS", store.current("field_reports")?),
        ("DOCUMENTS", store.current("documents")?),
    ];
    for (stream, tree) in &trees {
        let last = js
            .get_stream(*stream)
            .await?
            .info()
            .await?
            .state
            .last_sequence;
        while lienthong_replay::store::checkpoint(tree)? < last {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let total = (rate * seconds) as usize;
    let events = drafts(base, total, "e2e");
    // A watcher notes when each published event becomes visible (its projection's
    // checkpoint reaches its sequence), while the publisher keeps its steady rate.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let watch_trees = [trees[0].1.clone(), trees[1].1.clone()];
    let watcher = tokio::spawn(async move {
        let mut pending: Vec<(usize, u64, Instant)> = Vec::new();
        let mut latencies = Vec::new();
        let mut open = true;
        let mut deadline: Option<Instant> = None;
        loop {
            while let Ok(x) = rx.try_recv() {
                pending.push(x);
            }
            if open && rx.is_closed() && rx.is_empty() {
                open = false;
                deadline = Some(Instant::now() + Duration::from_secs(30));
            }
            let cps = [
                lienthong_replay::store::checkpoint(&watch_trees[0]).unwrap_or(0),
                lienthong_replay::store::checkpoint(&watch_trees[1]).unwrap_or(0),
            ];
            let now = Instant::now();
            pending.retain(|(s, seq, t0)| {
                if cps[*s] >= *seq {
                    latencies.push((now - *t0).as_secs_f64() * 1000.0);
                    false
                } else {
                    true
                }
            });
            if !open && (pending.is_empty() || deadline.is_some_and(|d| now > d)) {
                return latencies;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    });
    let tick = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for (i, d) in events.into_iter().enumerate() {
        let due = start + tick * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let t0 = Instant::now();
        let stream = if d.event_type.subsystem == "documents" {
            1
        } else {
            0
        };
        let p = publisher.publish(d).await?;
        let _ = tx.send((stream, p.sequence, t0));
    }
    drop(tx);
    let mut latencies = watcher.await?;
    let _ = stop_tx.send(true);
    let _ = service.await;
    // Polled every 0.2 ms: each figure may be up to that much late.
    latencies.sort_by(f64::total_cmp);
    Ok((
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len(),
    ))
}

async fn rebuild_rss(
    operator: &jetstream::Context,
    publisher: &Publisher,
    base: &[EventDraft],
    n: usize,
    creds: &CredentialSet,
    url: &str,
) -> anyhow::Result<(f64, u64, f64)> {
    fill(operator, publisher, base, n).await?;
    let dir = tempfile::tempdir()?;
    creds.write(dir.path(), url)?;
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let out = std::process::Command::new(exe)
        .args([
            "replay",
            "rebuild",
            "--projection",
            "field_reports",
            "--projection",
            "documents",
            "--db",
        ])
        .arg(dir.path().join("db"))
        .arg("--env")
        .arg(dir.path().join("replay.env"))
        .stderr(std::process::Stdio::null())
        .output()?;
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(out.status.success(), "the rebuild child failed");
    // The child reports its own high-water mark: getrusage(RUSAGE_CHILDREN) would count
    // this process's memory too (the child is forked from it before exec).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let peak_mb: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix(super::PEAK_MEMORY_LINE))
        .and_then(|v| v.trim().parse().ok())
        .context("the rebuild child did not report its peak memory")?;
    let mut total = 0u64;
    for s in ["FIELD_REPORTS", "DOCUMENTS"] {
        total += operator.get_stream(s).await?.info().await?.state.messages;
    }
    Ok((peak_mb, total, total as f64 / elapsed))
}
