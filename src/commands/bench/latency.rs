//! End to end: publish at a steady rate → visible in the read model (its checkpoint reached).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use lienthong_bus::{EventDraft, Publisher};
use lienthong_replay::ReadStore;

use super::{drafts, percentile};
use crate::commands::Global;

pub(super) async fn end_to_end(
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
        lienthong_bus::tls::http::Listener::plain(listener)?,
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
