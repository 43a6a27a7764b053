//! History integrity for the operations centre: the replay service verifies, at a steady
//! cadence, every audited stream against the signed checkpoints in `AUDIT` (the same check as
//! `lienthong audit verify`), and keeps the last verdict per stream for the dashboard and
//! `GET /api/v1/integrity`. A verdict that is not intact is an alarm, logged at `error`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use lienthong_audit::verify::{checkpoints_from_audit, verify_stream, Tampering};
use lienthong_bus::StreamReader;
use serde::Serialize;
use tracing::{error, info};

use crate::store::ReadStore;

/// The verdict on one stream at one time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamIntegrity {
    pub stream: String,
    /// When this verification ran.
    pub verified_at: DateTime<Utc>,
    /// Signed checkpoints that verified.
    pub checkpoints: usize,
    /// The last stream sequence those checkpoints cover.
    pub covered_to: u64,
    /// When the last of them was signed.
    pub last_checkpoint_at: Option<DateTime<Utc>>,
    /// The stream's last sequence at the time.
    pub stream_last: u64,
    /// What was found wrong (`None`: intact so far as checkpoints cover), in words.
    pub alarm: Option<String>,
    /// The kind of tampering found, when it was tampering (not a failure to read).
    pub tampering: Option<Tampering>,
    /// The first stream sequence found wrong.
    pub first_bad_seq: Option<u64>,
    /// How far the read model of this stream had folded it, just before the check.
    pub read_model_folded: Option<u64>,
    /// The read model has folded more than the stream holds: the stream was deleted and
    /// recreated under it, and it serves figures the stream no longer supports.
    pub read_model_ahead: bool,
}

/// The latest verdicts, shared with the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct Integrity(Arc<RwLock<Vec<StreamIntegrity>>>);

impl Integrity {
    pub fn latest(&self) -> Vec<StreamIntegrity> {
        self.0.read().map(|v| v.clone()).unwrap_or_default()
    }

    fn set(&self, stream: StreamIntegrity) {
        if let Ok(mut v) = self.0.write() {
            match v.iter_mut().find(|s| s.stream == stream.stream) {
                Some(old) => *old = stream,
                None => v.push(stream),
            }
        }
    }

    /// Verifies every audited stream every `every` until `stop` turns true.
    pub async fn watch(
        self,
        reader: StreamReader,
        key: VerifyingKey,
        store: ReadStore,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        // The first verification waits for the audit writer's first checkpoints.
        let first = every.min(Duration::from_secs(10));
        tokio::select! {
            _ = tokio::time::sleep(first) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            for stream in lienthong_bus::registry::audited_streams() {
                // The read model's position first: a stream only grows, so a read model
                // ahead of what the stream holds afterwards means the stream was recreated.
                let folded = folded(&store, stream);
                let mut verdict = verify(&reader, stream, &key).await;
                verdict.read_model_folded = folded;
                // (Only when the stream could be read: `stream_last` is then what it holds.)
                let read = verdict.alarm.is_none() || verdict.tampering.is_some();
                if let Some(f) = folded.filter(|f| read && *f > verdict.stream_last) {
                    verdict.read_model_ahead = true;
                    verdict.alarm.get_or_insert_with(|| format!(
                        "{stream}: the read model folded {f} events, the stream now holds {}: it was recreated under the read model; rebuild it",
                        verdict.stream_last
                    ));
                }
                match &verdict.alarm {
                    Some(a) => error!(stream, alarm = %a, "history integrity alarm"),
                    None => info!(
                        stream,
                        covered_to = verdict.covered_to,
                        "history verified against the signed checkpoints"
                    ),
                }
                self.set(verdict);
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The last sequence of `stream` folded into the served read model that follows it.
fn folded(store: &ReadStore, stream: &str) -> Option<u64> {
    let model = crate::read_models::all()
        .into_iter()
        .find(|m| m.projection.stream() == stream)?;
    let tree = store.current(model.projection.name()).ok()?;
    crate::store::checkpoint(&tree).ok()
}

async fn verify(reader: &StreamReader, stream: &str, key: &VerifyingKey) -> StreamIntegrity {
    let verified_at = Utc::now();
    let cannot = |e: &dyn std::fmt::Display| StreamIntegrity {
        stream: stream.to_string(),
        verified_at,
        checkpoints: 0,
        covered_to: 0,
        last_checkpoint_at: None,
        stream_last: 0,
        alarm: Some(format!("cannot be verified: {e}")),
        tampering: None,
        first_bad_seq: None,
        read_model_folded: None,
        read_model_ahead: false,
    };
    let checkpoints = match checkpoints_from_audit(reader, stream).await {
        Ok(c) => c,
        Err(e) => return cannot(&e),
    };
    let last_checkpoint_at = checkpoints.last().map(|c| c.signed_at);
    match verify_stream(reader, stream, checkpoints, key, &|_, _| {}).await {
        Ok(report) => StreamIntegrity {
            stream: stream.to_string(),
            verified_at,
            checkpoints: report.checkpoints,
            covered_to: report.covered_to,
            last_checkpoint_at,
            stream_last: report.stream_last,
            alarm: (!report.intact()).then(|| report.to_string()),
            tampering: report.tampering,
            first_bad_seq: report.first_bad_seq,
            read_model_folded: None,
            read_model_ahead: false,
        },
        Err(e) => cannot(&e),
    }
}
