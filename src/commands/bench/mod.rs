//! `lienthong bench`: the bus against the raw engine, in one run, on this machine.
//!
//! Starts its own nats-server (the project's `nats.conf`, a temporary store) and uses the
//! same realistic payloads for both sides — the demo city's field reports and documents:
//! - publish: plain async-nats JetStream publish (a sliding window of PubAcks, every one
//!   awaited) vs the bus publisher (validation, envelope, dedupe id, PubAck), each side at
//!   its best window of 64–4,096; also raw with the bus's headers (what the server's
//!   duplicate check costs), the bus in atomic batches, and each side's processor time per
//!   event;
//! - replay: a raw drain of the streams with an ordered consumer vs a full rebuild of the
//!   field-reports and documents read models in sled, checkpoints included;
//! - validation: the cost of validating one event's data (p50);
//! - end to end: publish → visible in the read model, at a steady rate (p50, p99);
//! - memory: peak RSS of `lienthong replay rebuild` (a child process, which reports its own
//!   high-water mark) over ≥ 1,000,000 events;
//! - durable mode: a second server with `sync_interval: always`, naive pipelined publishing
//!   vs atomic batches of 1,000;
//! - webhooks: delivery to a local receiver (signed, one POST per event, in order) vs the raw
//!   drain of the same stream (the agency's copy).
//!
//! Ratios are medians over `--runs`. Nothing here is a pass/fail test: the targets are shown
//! beside the figures. `--only PART` measures one part (while working on it).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream;
use lienthong_bus::{CredentialSet, EventDraft, NatsServer, Publisher};
use serde_json::json;

use super::Global;

mod ingress;
mod latency;
mod publish;
mod replay;
mod webhook;

use latency::end_to_end;
use publish::{bus_publish, bus_publish_batched, durable, fresh_streams, prepare_all, raw_publish};
use replay::{drain, fill, rebuild_rss, replay};

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
    /// Events delivered by webhook (and drained raw) in the webhook comparison.
    #[arg(long, default_value_t = 20_000)]
    webhook_events: usize,
    /// Measure only these parts (for working on one of them); all when not given.
    #[arg(long, value_enum)]
    only: Vec<Part>,
    /// How the cost of a rebuild grows with the history: rebuild histories of each of
    /// --scale-sizes events and report time per event and peak memory (instead of the
    /// comparisons).
    #[arg(long)]
    scale: bool,
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000,5000000")]
    scale_sizes: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Publish,
    Replay,
    Validate,
    E2e,
    Rss,
    Durable,
    Webhook,
    Ingress,
    Cluster,
}

/// This process's processor time so far (user and system, every thread), in seconds.
fn process_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            (u.user_time().num_microseconds() + u.system_time().num_microseconds()) as f64 / 1e6
        })
        .unwrap_or(0.0)
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
    let base = lienthong_adapters::demo_events::field_report_and_document_events();
    eprintln!("bench: {} distinct field-report and document events from the demo city; nats-server at {url}", base.len());
    let publisher = Publisher::new(operator.clone(), registry.clone(), "urn:lienthong:bench");
    let mut figures = serde_json::Map::new();
    let mut rows: Vec<Row> = Vec::new();
    if a.scale {
        let mut sizes = a.scale_sizes.clone();
        sizes.sort_unstable();
        let points = replay::scale(&operator, &publisher, &base, &sizes, &creds, &url).await?;
        server.stop().await?;
        let (first, last) = (points[0], points[points.len() - 1]);
        let growth = last.1 / first.1;
        let raw_growth = last.3 / first.3;
        figures.insert(
            "scale".into(),
            json!(points
                .iter()
                .map(|(n, us, mb, raw)| json!({"events": n, "us_per_event": round(*us, 3), "rss_mb": round(*mb, 1), "raw_drain_us_per_event": round(*raw, 3)}))
                .collect::<Vec<_>>()),
        );
        figures.insert("replay_cost_growth".into(), json!(round(growth, 3)));
        figures.insert("raw_drain_cost_growth".into(), json!(round(raw_growth, 3)));
        for (n, us, mb, raw) in &points {
            rows.push(row(
                format!("raw ordered drain, {n} events (µs/event)"),
                format!("{raw:.2}"),
                "",
                None,
            ));
            rows.push(row(
                format!("rebuild, {n} events (µs/event)"),
                format!("{us:.2}"),
                "",
                None,
            ));
            rows.push(row(
                format!("  peak resident memory, {n} events (MB)"),
                format!("{mb:.1}"),
                if *n >= 5_000_000 { "<= 200" } else { "" },
                (*n >= 5_000_000).then_some(*mb <= 200.0),
            ));
            if *n == 5_000_000 {
                figures.insert("replay_rss_mb_5m".into(), json!(round(*mb, 1)));
            }
        }
        rows.push(row(
            format!("cost per event, {} / {} events", last.0, first.0),
            format!("{growth:.3}"),
            "<= 1.2",
            Some(growth <= 1.2),
        ));
        rows.push(row(
            "  the raw drain's, the same (information)",
            format!("{raw_growth:.3}"),
            "",
            None,
        ));
        print_rows(&rows);
        write_json(a.json.as_ref(), &figures)?;
        return Ok(ExitCode::SUCCESS);
    }
    figures.insert("events".into(), json!(a.events));
    figures.insert("runs".into(), json!(a.runs));

    // The in-flight windows (each side's best, when the publish part measures them).
    let (mut bus_window, mut headers_window) = (1024, 1024);
    // Publish: raw vs bus, alternating, same payloads.
    if wants(Part::Publish) {
        let (mut raw_rates, mut bus_rates, mut raw_header_rates, mut batched_rates) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // This process's processor time per event (raw with headers, bus): the client's
        // share of the work, steadier than the rates on a machine the server shares.
        let mut cpu_rates: [Vec<f64>; 2] = Default::default();
        // Fair baselines: each side at its own best in-flight window.
        let (w_raw, w_headers, w_bus) =
            publish::best_windows(&operator, &publisher, &base, (a.events / 4).max(1000)).await?;
        eprintln!("bench: windows kept: raw {w_raw}, raw with headers {w_headers}, bus {w_bus}");
        bus_window = w_bus;
        headers_window = w_headers;
        figures.insert(
            "publish_windows".into(),
            json!({"raw": w_raw, "raw_with_headers": w_headers, "bus": w_bus}),
        );
        for run in 0..a.runs {
            // Every run starts from empty streams on both sides: the server's memory of
            // message ids (what the duplicate check searches) grows with each run otherwise.
            if run > 0 {
                fresh_streams(&operator).await?;
            }
            let ds = drafts(&base, a.events, &format!("p{run}"));
            let prepared = prepare_all(&publisher, &ds)?;
            let raw = raw_publish(&operator, &prepared, false, w_raw).await?;
            let cpu = process_cpu_seconds();
            let bus = bus_publish(&publisher, ds, w_bus).await?;
            let bus_cpu = process_cpu_seconds() - cpu;
            let cpu = process_cpu_seconds();
            let raw_headers = raw_publish(&operator, &prepared, true, w_headers).await?;
            let raw_headers_cpu = process_cpu_seconds() - cpu;
            let per_event = |s: f64| s * 1e6 / a.events as f64;
            cpu_rates[0].push(per_event(raw_headers_cpu));
            cpu_rates[1].push(per_event(bus_cpu));
            let batched =
                bus_publish_batched(&publisher, drafts(&base, a.events, &format!("pb{run}")))
                    .await?;
            eprintln!(
                "bench: publish run {}: raw {raw:.0}/s, bus {bus:.0}/s, bus in atomic batches {batched:.0}/s (raw with the bus's headers {raw_headers:.0}/s); this process's processor time per event: raw with headers {:.2} µs, bus {:.2} µs",
                run + 1,
                per_event(raw_headers_cpu),
                per_event(bus_cpu)
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
        let [raw_headers_cpu, bus_cpu] = cpu_rates.map(median);
        figures.insert(
            "publish_client_cpu_us_per_event".into(),
            json!({"raw_with_headers": round(raw_headers_cpu, 3), "bus": round(bus_cpu, 3)}),
        );
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
            "bus / raw with the same headers",
            format!("{same_headers:.3}"),
            ">= 0.90",
            Some(same_headers >= 0.9),
        ));
        rows.push(row(
            "  bus / raw without headers (info)",
            format!("{ratio:.3}"),
            "",
            None,
        ));
        rows.push(row(
            "  raw with headers / raw (ceiling)",
            format!("{ceiling:.3}"),
            "",
            None,
        ));
        rows.push(row(
            "  client processor µs per event: raw+headers, bus",
            format!("{raw_headers_cpu:.2}, {bus_cpu:.2}"),
            "",
            None,
        ));
        rows.push(row(
            "  in-flight windows: raw, raw+headers, bus",
            format!("{w_raw}, {w_headers}, {w_bus}"),
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

    // The HTTP ingress in batch mode against the bus publisher, same events.
    if wants(Part::Ingress) {
        let ingress_js = js_as("ingress").await?;
        let (mut bus_rates, mut http_rates) = (Vec::new(), Vec::new());
        for run in 0..a.runs {
            fresh_streams(&operator).await?;
            let ds = drafts(&base, a.events, &format!("i{run}"));
            let prepared = prepare_all(&publisher, &ds)?;
            let bus = bus_publish(&publisher, ds, bus_window).await?;
            fresh_streams(&operator).await?;
            let http = ingress::ingress(ingress_js.clone(), registry.clone(), &prepared).await?;
            eprintln!(
                "bench: ingress run {}: bus {bus:.0}/s, HTTP batches through the ingress {http:.0}/s",
                run + 1
            );
            bus_rates.push(bus);
            http_rates.push(http);
        }
        let ratio = median(
            bus_rates
                .iter()
                .zip(&http_rates)
                .map(|(b, h)| h / b)
                .collect(),
        );
        let http = median(http_rates);
        figures.insert("ingress_per_s".into(), json!(http.round()));
        figures.insert("ingress_ratio".into(), json!(round(ratio, 3)));
        rows.push(row(
            format!(
                "ingress, HTTP batches of {} ({} in flight) (events/s)",
                ingress::BATCH,
                ingress::IN_FLIGHT
            ),
            format!("{http:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "ingress / bus publisher",
            format!("{ratio:.3}"),
            ">= 0.50",
            Some(ratio >= 0.5),
        ));
        fresh_streams(&operator).await?;
    }

    // Replay: raw drain vs rebuild of the read models, over the same streams.
    let replay_js = js_as("replay").await?;
    if wants(Part::Replay) {
        fill(&operator, &publisher, &base, a.events * a.runs).await?;
        let (mut raw_drains, mut rebuilds, mut replayed) = (Vec::new(), Vec::new(), 0);
        let mut stages: [Vec<f64>; 3] = Default::default();
        for run in 0..a.runs {
            let (n, raw) = drain(&replay_js, &["FIELD_REPORTS", "DOCUMENTS"]).await?;
            let (m, bus, cpu) = replay(&replay_js, global, &["field_reports", "documents"]).await?;
            eprintln!(
                "bench: replay run {}: raw drain {raw:.0}/s ({n}), rebuild {bus:.0}/s ({m}); processor time per event: decode and validate {:.2} µs, fold {:.2} µs, commit {:.2} µs",
                run + 1, cpu[0], cpu[1], cpu[2]
            );
            raw_drains.push(raw);
            rebuilds.push(bus);
            replayed = n;
            for (s, v) in stages.iter_mut().zip(cpu) {
                s.push(v);
            }
        }
        let [decode, fold, commit] = stages.map(median);
        figures.insert(
            "replay_cpu_us_per_event".into(),
            json!({"decode": round(decode, 3), "fold": round(fold, 3), "commit": round(commit, 3)}),
        );
        let ratios: Vec<f64> = raw_drains
            .iter()
            .zip(&rebuilds)
            .map(|(r, b)| b / r)
            .collect();
        // The target holds for every run, not the median only.
        let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let ratio = median(ratios);
        let (raw, bus) = (median(raw_drains), median(rebuilds));
        figures.insert("replay_ratio_min".into(), json!(round(lowest, 3)));
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
            "  processor time per event: decode + validate / fold / commit (µs)",
            format!("{decode:.2} / {fold:.2} / {commit:.2}"),
            "",
            None,
        ));
        rows.push(row(
            "replay ratio (median)",
            format!("{ratio:.3}"),
            "",
            None,
        ));
        rows.push(row(
            "replay ratio, lowest run",
            format!("{lowest:.3}"),
            ">= 0.70",
            Some(lowest >= 0.7),
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
    // Webhook delivery to a local receiver vs the raw drain of the same stream.
    if wants(Part::Webhook) {
        let have = operator
            .get_stream("FIELD_REPORTS")
            .await?
            .info()
            .await?
            .state
            .messages;
        if (have as usize) < a.webhook_events {
            let reports: Vec<EventDraft> = base
                .iter()
                .filter(|d| d.event_type.subsystem == "field_reports")
                .cloned()
                .collect();
            let ds = drafts(&reports, a.webhook_events - have as usize, "webhook");
            for r in publisher.publish_batched(ds, 1000).await {
                r?;
            }
        }
        let (n, raw, hook) = webhook::webhook(&server, &creds, registry.clone()).await?;
        let ratio = hook / raw;
        figures.insert("webhook_events".into(), json!(n));
        figures.insert("webhook_raw_drain_per_s".into(), json!(raw.round()));
        figures.insert("webhook_per_s".into(), json!(hook.round()));
        figures.insert("webhook_ratio".into(), json!(round(ratio, 4)));
        rows.push(row(
            format!("webhook, raw drain of the copy, {n} (events/s)"),
            format!("{raw:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "webhook delivery, local receiver (events/s)",
            format!("{hook:.0}"),
            "",
            None,
        ));
        rows.push(row("webhook / raw drain", format!("{ratio:.4}"), "", None));
    }
    server.stop().await?;

    // A cluster of three (R3): the bus publisher against raw with the same headers.
    if wants(Part::Cluster) {
        let events = (a.events / 2).max(1000);
        let (raw, bus) =
            publish::cluster(global, &base, events, a.runs, (headers_window, bus_window)).await?;
        let ratio = bus / raw;
        figures.insert("cluster_events".into(), json!(events));
        figures.insert("cluster_raw_with_headers_per_s".into(), json!(raw.round()));
        figures.insert("cluster_bus_per_s".into(), json!(bus.round()));
        figures.insert("cluster_publish_ratio".into(), json!(round(ratio, 3)));
        rows.push(row(
            "cluster of 3 (R3), raw with headers (events/s)",
            format!("{raw:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "cluster of 3 (R3), bus publisher (events/s)",
            format!("{bus:.0}"),
            "",
            None,
        ));
        rows.push(row(
            "cluster: bus / raw with the same headers",
            format!("{ratio:.3}"),
            "",
            None,
        ));
    }

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

    print_rows(&rows);
    write_json(a.json.as_ref(), &figures)?;
    Ok(ExitCode::SUCCESS)
}

fn print_rows(rows: &[Row]) {
    println!("{:<48} {:>14}   {:<10}", "measure", "value", "target");
    for r in rows {
        let met = match r.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "",
        };
        println!("{:<48} {:>14}   {:<10} {met}", r.name, r.value, r.target);
    }
}

fn write_json(
    path: Option<&PathBuf>,
    figures: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}
