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

pub(super) async fn replay(
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

pub(super) async fn rebuild_rss(
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
        .find_map(|l| l.strip_prefix(crate::commands::PEAK_MEMORY_LINE))
        .and_then(|v| v.trim().parse().ok())
        .context("the rebuild child did not report its peak memory")?;
    let mut total = 0u64;
    for s in ["FIELD_REPORTS", "DOCUMENTS"] {
        total += operator.get_stream(s).await?.info().await?.state.messages;
    }
    Ok((peak_mb, total, total as f64 / elapsed))
}
