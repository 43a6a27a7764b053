//! Replay: a raw drain against a rebuild of the read models, and the rebuild's peak memory
//! over ≥ 1,000,000 events (in a child process).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use lienthong_bus::{CredentialSet, EventDraft, Publisher};
use lienthong_replay::{Metrics, ReadStore};

use super::drafts;
use super::publish::prepare_all;
use crate::commands::Global;

pub(super) async fn drain(js: &jetstream::Context, streams: &[&str]) -> anyhow::Result<(u64, f64)> {
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

/// A rebuild of `projections` into a fresh store: (events, events/s, processor time per
/// event in µs of each stage: decode and validate, fold, commit).
pub(super) async fn replay(
    js: &jetstream::Context,
    global: &Global,
    projections: &[&str],
) -> anyhow::Result<(u64, f64, [f64; 3])> {
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
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let (decode, fold, commit) = metrics.cpu.seconds();
    let per_event = |s: f64| s * 1e6 / n.max(1) as f64;
    Ok((
        n,
        rate,
        [per_event(decode), per_event(fold), per_event(commit)],
    ))
}

/// Fills the field-report and document streams up to `n` events (prepared once, sent raw).
pub(super) async fn fill(
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

/// One rebuild of the field-report and document read models in a child process, over
/// whatever the streams hold: (peak resident MB, events, events/s including the process's
/// start, seconds of the rebuild itself).
pub(super) async fn rebuild_child(
    operator: &jetstream::Context,
    creds: &CredentialSet,
    url: &str,
) -> anyhow::Result<(f64, u64, f64, f64)> {
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
    let line = |prefix: &str| -> Option<f64> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    let peak_mb = line(crate::commands::PEAK_MEMORY_LINE)
        .context("the rebuild child did not report its peak memory")?;
    let seconds = line(crate::commands::REBUILD_SECONDS_LINE)
        .context("the rebuild child did not report its time")?;
    let mut total = 0u64;
    for s in ["FIELD_REPORTS", "DOCUMENTS"] {
        total += operator.get_stream(s).await?.info().await?.state.messages;
    }
    Ok((peak_mb, total, total as f64 / elapsed, seconds))
}

/// The streams filled to `n` events, then [`rebuild_child`]: (peak MB, events, events/s).
pub(super) async fn rebuild_rss(
    operator: &jetstream::Context,
    publisher: &Publisher,
    base: &[EventDraft],
    n: usize,
    creds: &CredentialSet,
    url: &str,
) -> anyhow::Result<(f64, u64, f64)> {
    fill(operator, publisher, base, n).await?;
    let (peak, events, rate, _) = rebuild_child(operator, creds, url).await?;
    Ok((peak, events, rate))
}

/// How the cost of a rebuild grows with the history: for each size (ascending), the
/// streams filled to it and rebuilt in a child process; (events, µs per event of the
/// rebuild itself, peak resident MB, µs per event of a raw ordered drain of the same
/// streams) each.
pub(super) async fn scale(
    operator: &jetstream::Context,
    publisher: &Publisher,
    base: &[EventDraft],
    sizes: &[usize],
    creds: &CredentialSet,
    url: &str,
) -> anyhow::Result<Vec<(u64, f64, f64, f64)>> {
    let mut out = Vec::new();
    for &n in sizes {
        fill(operator, publisher, base, n).await?;
        let (peak, events, _, seconds) = rebuild_child(operator, creds, url).await?;
        let us = seconds * 1e6 / events.max(1) as f64;
        let (drained, raw) = drain(operator, &["FIELD_REPORTS", "DOCUMENTS"]).await?;
        let raw_us = 1e6 / raw;
        eprintln!(
            "bench: scale {events} events: rebuild {seconds:.1} s ({us:.2} µs/event, {:.0}/s), peak {peak:.1} MB; raw drain of {drained}: {raw_us:.2} µs/event",
            events as f64 / seconds
        );
        out.push((events, us, peak, raw_us));
    }
    Ok(out)
}
