//! Exports of a stream for auditors: every (or every matching) event with its stream
//! sequence, store time, content digest and chain hash, plus the signed checkpoints that
//! cover them — verifiable offline with [`verify_export`], without access to NATS.
//!
//! JSON Lines: one `{"kind":"event",…}` per event, then one `{"kind":"checkpoint",…}` per
//! covering checkpoint. CSV: one row per event (`checkpoints` written beside it as JSON Lines).

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use lienthong_bus::cloudevents::AttributesReader;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chain::{content_digest, entry_of, genesis, link, message_headers, Entry};
use crate::checkpoint::Checkpoint;
use crate::error::{AuditError, Result};
use crate::read::read_from;
use crate::verify::{verify_checkpoints, Tampering};
use lienthong_bus::StreamReader;

/// Which events to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// CloudEvents type, exact.
    pub ty: Option<String>,
    /// NATS subject filter (`*`, `>` allowed).
    pub subject: Option<String>,
    /// Event `time` bounds (when it happened), inclusive.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

fn subject_matches(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, t) in f.iter().enumerate() {
        match *t {
            ">" => return s.len() > i,
            "*" if i < s.len() => {}
            t if s.get(i) == Some(&t) => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

/// One exported event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedEvent {
    pub kind: String,
    pub stream: String,
    pub seq: u64,
    pub stored_ns: i64,
    pub subject: String,
    /// The headers that matter, canonical (`name:value` lines).
    pub headers: String,
    pub payload_base64: String,
    pub content_digest: String,
    pub chain_hash: String,
    /// The CloudEvent, for reading (not part of the digest).
    pub event: Value,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    pub events: u64,
    pub checkpoints: usize,
    /// Exported events not yet covered by a checkpoint.
    pub uncovered: u64,
}

/// Writes the export of `stream` to `out` (JSON Lines), or CSV to `out` with the checkpoints
/// to `checkpoints_out`.
pub async fn export(
    reader: &StreamReader,
    stream: &str,
    filter: &ExportFilter,
    checkpoints: &[Checkpoint],
    out: &mut dyn Write,
    csv_checkpoints_out: Option<&mut dyn Write>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ExportSummary> {
    let io = |e: std::io::Error| AuditError::io(format!("writing the export of {stream}"), e);
    let nats =
        |e: &dyn std::fmt::Display| AuditError::nats(format!("reading {stream}"), e.to_string());
    let last = reader.last_sequence(stream).await.map_err(|e| nats(&e))?;
    let mut summary = ExportSummary::default();
    let mut csv = csv_checkpoints_out
        .is_some()
        .then(|| csv::Writer::from_writer(Vec::new()));
    if let Some(w) = csv.as_mut() {
        w.write_record([
            "seq",
            "stored_at",
            "subject",
            "type",
            "id",
            "time",
            "content_digest",
            "chain_hash",
            "headers",
            "payload_base64",
        ])
        .map_err(|e| io(e.into()))?;
    }
    let covered_to = checkpoints.iter().map(|c| c.last_seq).max().unwrap_or(0);
    let mut used: BTreeMap<u64, &Checkpoint> = BTreeMap::new();
    if last > 0 {
        let mut messages = read_from(reader, stream, 1, None, false);
        let mut head = genesis(stream);
        let mut expected = 1;
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| nats(&e))?;
            let Some((seq, entry)) = entry_of(&m) else {
                continue;
            };
            while expected < seq {
                head = link(&head, expected, &Entry::ABSENT);
                expected += 1;
            }
            head = link(&head, seq, &entry);
            expected = seq + 1;
            progress(seq, last);
            let ev = lienthong_bus::envelope::decode(Some(&m.headers), &m.payload).ok();
            let keep = filter
                .subject
                .as_ref()
                .is_none_or(|f| subject_matches(f, &m.subject))
                && filter
                    .ty
                    .as_ref()
                    .is_none_or(|t| ev.as_ref().is_some_and(|e| e.ty() == t))
                && (filter.since.is_none() && filter.until.is_none()
                    || ev
                        .as_ref()
                        .and_then(|e| e.time().copied())
                        .is_some_and(|t| {
                            filter.since.is_none_or(|s| t >= s)
                                && filter.until.is_none_or(|u| t <= u)
                        }));
            if keep {
                let headers = message_headers(&m);
                let record = ExportedEvent {
                    kind: "event".into(),
                    stream: stream.into(),
                    seq,
                    stored_ns: entry.stored_ns,
                    subject: m.subject.to_string(),
                    headers,
                    payload_base64: base64::engine::general_purpose::STANDARD.encode(&m.payload),
                    content_digest: hex::encode(entry.content),
                    chain_hash: hex::encode(head),
                    event: ev
                        .as_ref()
                        .and_then(|e| serde_json::to_value(e).ok())
                        .unwrap_or(Value::Null),
                };
                match csv.as_mut() {
                    Some(w) => w
                        .write_record([
                            seq.to_string(),
                            DateTime::<Utc>::from_timestamp_nanos(entry.stored_ns).to_rfc3339(),
                            record.subject.clone(),
                            ev.as_ref().map(|e| e.ty().to_string()).unwrap_or_default(),
                            ev.as_ref().map(|e| e.id().to_string()).unwrap_or_default(),
                            ev.as_ref()
                                .and_then(|e| e.time().map(|t| t.to_rfc3339()))
                                .unwrap_or_default(),
                            record.content_digest.clone(),
                            record.chain_hash.clone(),
                            record.headers.clone(),
                            record.payload_base64.clone(),
                        ])
                        .map_err(|e| io(e.into()))?,
                    None => {
                        serde_json::to_writer(&mut *out, &record).map_err(|e| io(e.into()))?;
                        out.write_all(b"\n").map_err(io)?;
                    }
                }
                summary.events += 1;
                if seq > covered_to {
                    summary.uncovered += 1;
                }
                if let Some(c) = checkpoints
                    .iter()
                    .find(|c| c.first_seq <= seq && seq <= c.last_seq)
                {
                    used.insert(c.first_seq, c);
                }
            }
            if seq >= last {
                break;
            }
        }
    }
    summary.checkpoints = used.len();
    match (csv, csv_checkpoints_out) {
        (Some(w), Some(cp_out)) => {
            out.write_all(
                &w.into_inner()
                    .map_err(|e| io(std::io::Error::other(e.to_string())))?,
            )
            .map_err(io)?;
            for c in used.values() {
                serde_json::to_writer(&mut *cp_out, c).map_err(|e| io(e.into()))?;
                cp_out.write_all(b"\n").map_err(io)?;
            }
        }
        _ => {
            for c in used.values() {
                let mut v = serde_json::to_value(c).map_err(|e| io(e.into()))?;
                v["kind"] = json!("checkpoint");
                serde_json::to_writer(&mut *out, &v).map_err(|e| io(e.into()))?;
                out.write_all(b"\n").map_err(io)?;
            }
        }
    }
    Ok(summary)
}

/// The verdict on an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    pub events: u64,
    pub verified: u64,
    /// Events with no covering checkpoint in the export.
    pub uncovered: u64,
    pub tampering: Option<Tampering>,
    pub first_bad_seq: Option<u64>,
    pub detail: Option<String>,
}

/// Verifies a JSON Lines export offline: the checkpoints' signatures and chain, and every
/// event's digest, store time and chain hash against them.
pub fn verify_export(text: &str, key: &VerifyingKey) -> ExportReport {
    let mut report = ExportReport {
        events: 0,
        verified: 0,
        uncovered: 0,
        tampering: None,
        first_bad_seq: None,
        detail: None,
    };
    let mut events = Vec::new();
    let mut checkpoints: BTreeMap<String, Vec<Checkpoint>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(mut v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match v.get("kind").and_then(Value::as_str) {
            Some("event") => {
                if let Ok(e) = serde_json::from_value::<ExportedEvent>(v) {
                    events.push(e);
                }
            }
            Some("checkpoint") => {
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                }
                if let Ok(c) = serde_json::from_value::<Checkpoint>(v) {
                    checkpoints.entry(c.stream.clone()).or_default().push(c);
                }
            }
            _ => {}
        }
    }
    report.events = events.len() as u64;
    // Each stream's checkpoints must verify; an export may hold a run that starts later
    // than sequence 1, so they are checked one by one and as a contiguous run.
    let mut by_seq: BTreeMap<(String, u64), (Entry, String)> = BTreeMap::new();
    for (stream, cps) in checkpoints {
        for c in &cps {
            match c.verify(key) {
                Ok(entries) => {
                    for ((seq, head), e) in c.heads(&entries).into_iter().zip(entries) {
                        by_seq.insert((stream.clone(), seq), (e, head));
                    }
                }
                Err(f) => {
                    let (kind, _, detail) = verify_checkpoints(&stream, vec![c.clone()], key)
                        .err()
                        .unwrap_or((Tampering::CheckpointChainBroken, c.first_seq, f.to_string()));
                    report.tampering = Some(kind);
                    report.first_bad_seq = Some(c.first_seq);
                    report.detail = Some(detail);
                    return report;
                }
            }
        }
    }
    for e in events {
        let Some((entry, head)) = by_seq.get(&(e.stream.clone(), e.seq)) else {
            report.uncovered += 1;
            continue;
        };
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&e.payload_base64)
            .unwrap_or_default();
        let digest = content_digest(&e.subject, &e.headers, &payload);
        if digest != entry.content || e.stored_ns != entry.stored_ns || &e.chain_hash != head {
            report.tampering = Some(Tampering::Altered);
            report.first_bad_seq = Some(e.seq);
            report.detail = Some(format!(
                "{} sequence {}: the exported event does not match its signed checkpoint",
                e.stream, e.seq
            ));
            return report;
        }
        report.verified += 1;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_filters() {
        assert!(subject_matches(
            "egov.sso.>",
            "egov.sso.session.u-1.started"
        ));
        assert!(subject_matches(
            "egov.sso.*.*.started",
            "egov.sso.session.u-1.started"
        ));
        assert!(!subject_matches(
            "egov.sso.*.*.ended",
            "egov.sso.session.u-1.started"
        ));
        assert!(!subject_matches("egov.sso", "egov.sso.session"));
    }
}
