//! Verification: recompute each stream's chain and compare it with the signed checkpoints
//! (from `AUDIT`, or from exported files), naming the first sequence that differs and how.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use serde::Serialize;

use crate::chain::{entry_of, genesis, Entry};
use crate::checkpoint::{Checkpoint, CheckpointFault};
use crate::error::{AuditError, Result};
use crate::read::{checkpoint_subject, last_checkpoint, read_from, stream_created};
use lienthong_bus::StreamReader;

/// What was found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tampering {
    /// A message's content differs from what was recorded.
    Altered,
    /// A recorded message is gone (the rest shifted, or the stream ends early).
    Missing,
    /// Recorded messages are there, in another order.
    Reordered,
    /// The stream was deleted and recreated: its messages were stored again.
    StreamRecreated,
    /// A checkpoint's signature does not verify (forged or altered).
    CheckpointSignatureInvalid,
    /// A checkpoint signed with a key other than the published audit key.
    CheckpointUnknownKey,
    /// Checkpoints do not link up (one removed, replaced, or inconsistent).
    CheckpointChainBroken,
}

impl std::fmt::Display for Tampering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Altered => "altered",
            Self::Missing => "missing",
            Self::Reordered => "reordered",
            Self::StreamRecreated => "stream recreated",
            Self::CheckpointSignatureInvalid => "checkpoint signature invalid",
            Self::CheckpointUnknownKey => "checkpoint signed with another key",
            Self::CheckpointChainBroken => "checkpoint chain broken",
        })
    }
}

/// The verdict on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    pub stream: String,
    pub checkpoints: usize,
    /// Last sequence covered by a valid checkpoint.
    pub covered_to: u64,
    /// The stream's last sequence now (messages after `covered_to` await a checkpoint).
    pub stream_last: u64,
    /// `None`: intact.
    pub tampering: Option<Tampering>,
    pub first_bad_seq: Option<u64>,
    pub detail: Option<String>,
    /// Resumptions: sequences the checkpoints recorded that the stream no longer holds, and
    /// who resumed the chain after them (a standby promoted after the centre was lost). Not
    /// tampering, but not silent either: `audit verify` fails on them unless accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed: Vec<String>,
    /// Recorded messages the stream's age limit removed (a registered subsystem's
    /// `retention_days`): each was checked against its record in the signed checkpoints (the
    /// chain goes on through them) and was older than the limit. Not tampering.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expired: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StreamReport {
    pub fn intact(&self) -> bool {
        self.tampering.is_none()
    }
}

impl std::fmt::Display for StreamReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.tampering, self.first_bad_seq) {
            (None, _) if self.checkpoints == 0 => write!(
                f,
                "{}: no checkpoint yet ({} messages unverified)",
                self.stream, self.stream_last
            ),
            (None, _) => write!(
                f,
                "{}: intact — sequences 1..={} match {} signed checkpoint(s){}{}{}",
                self.stream,
                self.covered_to,
                self.checkpoints,
                if self.stream_last > self.covered_to {
                    format!(
                        "; {} newer message(s) await a checkpoint",
                        self.stream_last - self.covered_to
                    )
                } else {
                    String::new()
                },
                if self.expired > 0 {
                    format!(
                        "; the first {} removed by the stream's age limit, as recorded",
                        self.expired
                    )
                } else {
                    String::new()
                },
                self.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            (Some(t), seq) => write!(
                f,
                "{}: TAMPERED — {t}{}{}",
                self.stream,
                seq.map(|s| format!(" at sequence {s}")).unwrap_or_default(),
                self.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        }?;
        for r in &self.resumed {
            write!(f, "\n  RESUMED after a loss: {r}")?;
        }
        Ok(())
    }
}

/// Every checkpoint of `stream` in `AUDIT` (as stored; not yet verified).
pub async fn checkpoints_from_audit(
    reader: &StreamReader,
    stream: &str,
) -> Result<Vec<Checkpoint>> {
    // The last checkpoint's position bounds the read (and says at once when there is none).
    let Some((last, _)) = last_checkpoint(reader, stream).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut messages = read_from(reader, "AUDIT", 1, Some(checkpoint_subject(stream)), false);
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| AuditError::nats("reading AUDIT", e))?;
        // Something on the subject that is not a checkpoint is not evidence; it is skipped.
        if let Ok(c) = Checkpoint::from_message(Some(&msg.headers), &msg.payload) {
            out.push(c);
        }
        if msg.sequence >= last {
            break;
        }
    }
    Ok(out)
}

/// Checkpoints from exported files (`*.jsonl`: checkpoint lines, or export lines of kind
/// `checkpoint`), for `stream`.
pub fn checkpoints_from_files(dir: &std::path::Path, stream: &str) -> Result<Vec<Checkpoint>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| AuditError::io(format!("reading checkpoints in {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|x| x.to_str()) != Some("jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| AuditError::io(format!("reading {}", path.display()), e))?;
        for line in text.lines() {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v.get("kind")
                .and_then(|k| k.as_str())
                .is_some_and(|k| k != "checkpoint")
            {
                continue;
            }
            if let Some(o) = v.as_object_mut() {
                o.remove("kind");
            }
            if let Ok(c) = serde_json::from_value::<Checkpoint>(v) {
                if c.stream == stream {
                    out.push(c);
                }
            }
        }
    }
    Ok(out)
}

/// What is wrong, where, in words.
pub type Fault = (Tampering, u64, String);

/// Checkpoints verified, and what they record.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// In the order they chain.
    pub checkpoints: Vec<Checkpoint>,
    /// What is recorded for each sequence from 1, after every resumption.
    pub entries: Vec<Entry>,
    /// Resumptions: sequences recorded by earlier checkpoints and not held since (a standby
    /// promoted after the centre was lost), in words.
    pub resumed: Vec<String>,
}

/// The chain head after the first `n` of `entries` (sequences 1..=n).
fn head_after(stream: &str, entries: &[Entry], n: u64) -> [u8; 32] {
    entries
        .iter()
        .take(n as usize)
        .enumerate()
        .fold(genesis(stream), |h, (i, e)| {
            crate::chain::link(&h, i as u64 + 1, e)
        })
}

/// Verifies the checkpoints themselves: signatures, and that they link into one chain.
/// A resumption ([`Checkpoint::resumes`]) starts the chain again after an earlier sequence,
/// from the head recorded there: what the checkpoints before it recorded beyond is left
/// out (and said, in [`Recorded::resumed`]). Returns what is recorded, or the fault.
pub fn verify_checkpoints(
    stream: &str,
    mut checkpoints: Vec<Checkpoint>,
    key: &VerifyingKey,
) -> std::result::Result<Recorded, Fault> {
    // A resumption begins an era: the checkpoints after it, in the order given (`AUDIT`'s,
    // or an export's), follow it — never by clocks, which two machines need not agree on.
    let mut era = 0usize;
    let mut ordered: Vec<(usize, Checkpoint)> = checkpoints
        .drain(..)
        .map(|c| {
            era += usize::from(c.resumes.is_some());
            (era, c)
        })
        .collect();
    ordered.sort_by_key(|(era, c)| (*era, c.first_seq, c.last_seq));
    checkpoints = ordered.into_iter().map(|(_, c)| c).collect();
    checkpoints.dedup_by(|a, b| {
        a.first_seq == b.first_seq && a.last_seq == b.last_seq && a.head == b.head
    });
    let mut out = Recorded::default();
    let mut expected_first = 1;
    let mut expected_prev = hex::encode(genesis(stream));
    for c in &checkpoints {
        let e = c.verify(key).map_err(|f| {
            let kind = match f {
                CheckpointFault::UnknownKey { .. } => Tampering::CheckpointUnknownKey,
                CheckpointFault::BadSignature => Tampering::CheckpointSignatureInvalid,
                CheckpointFault::Inconsistent(_) => Tampering::CheckpointChainBroken,
            };
            (
                kind,
                c.first_seq,
                format!("checkpoint {}..={}: {f}", c.first_seq, c.last_seq),
            )
        })?;
        if let Some(r) = &c.resumes {
            let held = c.first_seq - 1;
            let recorded = out.entries.len() as u64;
            let head = hex::encode(head_after(stream, &out.entries, held));
            if !e.is_empty() || held > recorded || c.prev_head != head || r.lost_to != recorded {
                return Err((
                    Tampering::CheckpointChainBroken,
                    c.first_seq,
                    format!(
                        "a resumption after sequence {held} does not match what the \
                         checkpoints before it recorded ({recorded} sequences)"
                    ),
                ));
            }
            if recorded > held {
                out.resumed.push(format!(
                    "sequences {}..={recorded} were recorded and are not held: {} ({})",
                    held + 1,
                    r.reason,
                    c.signed_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
            out.entries.truncate(held as usize);
            expected_first = c.first_seq;
            expected_prev = c.prev_head.clone();
            out.checkpoints.push(c.clone());
            continue;
        }
        if c.first_seq != expected_first || c.prev_head != expected_prev {
            return Err((
                Tampering::CheckpointChainBroken,
                c.first_seq,
                format!("checkpoint {}..={} does not follow the previous one (expected it to start at {expected_first} from head {}…)", c.first_seq, c.last_seq, &expected_prev[..12]),
            ));
        }
        expected_first = c.last_seq + 1;
        expected_prev = c.head.clone();
        out.entries.extend(e);
        out.checkpoints.push(c.clone());
    }
    Ok(out)
}

/// When the checkpoints of `stream` (all of them, verified with `signing`'s public key)
/// record more than the `held_to` sequences the stream now holds: the signed resumption that
/// lets its chain go on after `held_to` (to be written to `AUDIT`). `None` when nothing
/// recorded is missing. A fault in the checkpoints is returned as it is.
pub fn resumption_for(
    stream: &str,
    stream_created: &str,
    checkpoints: Vec<Checkpoint>,
    signing: &ed25519_dalek::SigningKey,
    held_to: u64,
    reason: &str,
) -> std::result::Result<Option<Checkpoint>, Fault> {
    let recorded = verify_checkpoints(stream, checkpoints, &signing.verifying_key())?;
    let covered = recorded.entries.len() as u64;
    if covered <= held_to {
        return Ok(None);
    }
    Ok(Some(Checkpoint::resumption(
        signing,
        stream,
        stream_created,
        held_to,
        head_after(stream, &recorded.entries, held_to),
        covered,
        reason.to_string(),
    )))
}

/// Names what happened at the first differing sequence `seq` (1-based), given what was
/// recorded and what the stream holds now from there on.
fn classify(
    seq: u64,
    recorded: &[Entry],
    now: &Entry,
    next_now: Option<&Entry>,
    recreated: bool,
) -> (Tampering, String) {
    let i = (seq - 1) as usize;
    let rec = recorded[i];
    if now.content == rec.content {
        return if recreated {
            (
                Tampering::StreamRecreated,
                "same content, stored again: the stream was deleted and recreated".into(),
            )
        } else {
            (
                Tampering::Altered,
                "same content, different store time".into(),
            )
        };
    }
    let position: HashMap<[u8; 16], usize> = recorded
        .iter()
        .enumerate()
        .map(|(j, e)| (e.content, j))
        .collect();
    match position.get(&now.content) {
        Some(&j) => {
            let swapped = next_now.is_some_and(|n| n.content == rec.content);
            if swapped || j != i + 1 {
                (
                    Tampering::Reordered,
                    format!(
                        "holds the message recorded at {}{}",
                        j + 1,
                        if swapped {
                            ", and the next holds this one"
                        } else {
                            ""
                        }
                    ),
                )
            } else {
                (
                    Tampering::Missing,
                    format!("the message recorded at {seq} is gone; what follows moved up"),
                )
            }
        }
        None => (
            Tampering::Altered,
            "the content differs from the one recorded".into(),
        ),
    }
}

/// Verifies one stream against its checkpoints. `progress(done, total)` as messages are read.
pub async fn verify_stream(
    reader: &StreamReader,
    stream: &str,
    checkpoints: Vec<Checkpoint>,
    key: &VerifyingKey,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<StreamReport> {
    let (created, stream_last) = stream_created(reader, stream).await?;
    let state = reader
        .state(stream)
        .await
        .map_err(|e| AuditError::nats(format!("reading {stream}"), e))?;
    // A message the stream's age limit removed: below the first it holds, and older than
    // the limit by its recorded store time. The limit is the
    // one the subsystem's signed registration gives (REGISTRY), never the stream's own
    // configuration: shortening that removes messages this reports as missing.
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let limit_ns =
        i64::try_from(lienthong_bus::registry::admin::registered_age_limit(stream).as_nanos())
            .unwrap_or(i64::MAX);
    // Leeway for the clocks of the server and this machine: a minute, or a tenth of a short
    // limit.
    let leeway_ns = (limit_ns / 10).min(60_000_000_000);
    let expired = |seq: u64, recorded: &Entry| {
        limit_ns > 0
            && seq < state.first_sequence
            && recorded.stored_ns.saturating_add(limit_ns) <= now_ns.saturating_add(leeway_ns)
    };
    let mut report = StreamReport {
        stream: stream.to_string(),
        checkpoints: checkpoints.len(),
        covered_to: 0,
        stream_last,
        tampering: None,
        first_bad_seq: None,
        detail: None,
        resumed: Vec::new(),
        expired: 0,
    };
    let Recorded {
        checkpoints,
        entries: recorded,
        resumed,
    } = match verify_checkpoints(stream, checkpoints, key) {
        Ok(v) => v,
        Err((kind, seq, detail)) => {
            report.tampering = Some(kind);
            report.first_bad_seq = Some(seq);
            report.detail = Some(detail);
            return Ok(report);
        }
    };
    report.checkpoints = checkpoints.len();
    report.resumed = resumed;
    let covered = recorded.len() as u64;
    report.covered_to = covered;
    if covered == 0 {
        return Ok(report);
    }
    let recreated = checkpoints.iter().any(|c| c.stream_created != created);
    let recreated_note = || {
        if recreated {
            format!(
                " (the stream was created {created}; the checkpoints recorded {})",
                checkpoints[0].stream_created
            )
        } else {
            String::new()
        }
    };
    let fail = |report: &mut StreamReport, kind: Tampering, seq: u64, detail: String| {
        report.tampering = Some(kind);
        report.first_bad_seq = Some(seq);
        report.detail = Some(detail);
    };
    if stream_last == 0 {
        fail(
            &mut report,
            Tampering::Missing,
            1,
            format!(
                "the stream is empty but {covered} messages were recorded{}",
                recreated_note()
            ),
        );
        return Ok(report);
    }

    let mut messages = read_from(reader, stream, 1, None, false);
    let mut expected = 1u64;
    let mut held: Option<(u64, Entry)> = None;
    // Same content stored at another time: the message was stored again (stream recreated).
    let mut restored_from: Option<u64> = None;
    while expected <= covered {
        let (seq, entry) = match held.take() {
            Some(x) => x,
            None => match messages.next().await {
                Some(Ok(m)) => match entry_of(&m) {
                    Some(x) => x,
                    None => continue,
                },
                Some(Err(e)) => return Err(AuditError::nats(format!("reading {stream}"), e)),
                None => break,
            },
        };
        progress(seq.min(covered), covered);
        let want = recorded[(expected - 1) as usize];
        if seq > expected {
            if want != Entry::ABSENT && expired(expected, &want) {
                report.expired += 1;
                held = Some((seq, entry));
                expected += 1;
                continue;
            }
            if want != Entry::ABSENT {
                fail(
                    &mut report,
                    Tampering::Missing,
                    expected,
                    format!("no message at this sequence any more{}", recreated_note()),
                );
                return Ok(report);
            }
            held = Some((seq, entry));
            expected += 1;
            continue;
        }
        if entry.content == want.content && entry.stored_ns != want.stored_ns {
            restored_from.get_or_insert(expected);
        } else if entry != want {
            let next = if expected < covered {
                match messages.next().await {
                    Some(Ok(m)) => entry_of(&m).map(|(_, e)| e),
                    _ => None,
                }
            } else {
                None
            };
            let (kind, detail) = classify(expected, &recorded, &entry, next.as_ref(), recreated);
            fail(
                &mut report,
                kind,
                expected,
                format!("{detail}{}", recreated_note()),
            );
            return Ok(report);
        }
        expected += 1;
        if seq >= stream_last {
            break;
        }
    }
    // The stream holds none of what remains (its age limit removed all of it).
    while expected <= covered && expired(expected, &recorded[(expected - 1) as usize]) {
        report.expired += 1;
        expected += 1;
    }
    if expected <= covered {
        fail(
            &mut report,
            Tampering::Missing,
            expected,
            format!(
                "the stream ends at {} but {covered} messages were recorded{}",
                expected - 1,
                recreated_note()
            ),
        );
    } else if let Some(from) = restored_from {
        fail(
            &mut report,
            Tampering::StreamRecreated,
            from,
            format!(
                "the same contents were stored again from sequence {from}{}",
                recreated_note()
            ),
        );
    } else if recreated {
        // Every message as recorded, each with its original store time: the stream's files
        // were put back (a restore from a backup, a standby's mirror), not its messages
        // stored again.
        report.detail = Some(format!(
            "restored: created {created}, the checkpoints recorded {}; every message is the \
             one recorded, with its original store time",
            checkpoints[0].stream_created
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(c: u8, t: i64) -> Entry {
        Entry {
            content: [c; 16],
            stored_ns: t,
        }
    }

    #[test]
    fn a_resumption_continues_the_chain_after_what_is_held() {
        use crate::checkpoint::parse_head;
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let vk = key.verifying_key();
        let all: Vec<Entry> = (1..=10).map(|i| e(i, i as i64)).collect();
        let c1 = Checkpoint::sign(&key, "S", "t0", 1, genesis("S"), &all[..6]);
        let c2 = Checkpoint::sign(&key, "S", "t0", 7, parse_head(&c1.head).unwrap(), &all[6..]);
        // Nothing missing: no resumption.
        assert!(
            resumption_for("S", "t1", vec![c1.clone(), c2.clone()], &key, 10, "x")
                .unwrap()
                .is_none()
        );
        // Held to 4 (within c1): the chain resumes from the head at 4.
        let r = resumption_for(
            "S",
            "t1",
            vec![c1.clone(), c2.clone()],
            &key,
            4,
            "standby sb",
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.first_seq, r.last_seq), (5, 4));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let new: Vec<Entry> = (50..53).map(|i| e(i, i as i64)).collect();
        let c3 = Checkpoint::sign(&key, "S", "t1", 5, parse_head(&r.head).unwrap(), &new);
        // Eras by the order given (AUDIT's), not by clocks.
        let got = verify_checkpoints(
            "S",
            vec![c2.clone(), c1.clone(), r.clone(), c3.clone()],
            &vk,
        )
        .unwrap();
        assert_eq!(got.entries.len(), 7);
        assert_eq!(got.entries[4], new[0]);
        assert_eq!(got.resumed.len(), 1);
        assert!(
            got.resumed[0].contains("sequences 5..=10"),
            "{:?}",
            got.resumed
        );
        // A resumption that misstates what was recorded is refused.
        let short = Checkpoint::resumption(
            &key,
            "S",
            "t1",
            4,
            parse_head(&c1.heads(&c1.entries().unwrap())[3].1).unwrap(),
            8,
            "x".into(),
        );
        let err = verify_checkpoints("S", vec![c1.clone(), c2.clone(), short], &vk).unwrap_err();
        assert_eq!(err.0, Tampering::CheckpointChainBroken);
        // A resumption that does not start from the recorded head is refused.
        let forged = Checkpoint::resumption(&key, "S", "t1", 4, [9; 32], 10, "x".into());
        let err = verify_checkpoints("S", vec![c1.clone(), c2.clone(), forged], &vk).unwrap_err();
        assert_eq!(err.0, Tampering::CheckpointChainBroken);
        // Without the resumption, the new era's checkpoint does not follow.
        let err = verify_checkpoints("S", vec![c1, c2, c3], &vk).unwrap_err();
        assert_eq!(err.0, Tampering::CheckpointChainBroken);
    }

    #[test]
    fn differences_are_named() {
        let rec = [e(1, 1), e(2, 2), e(3, 3), e(4, 4)];
        assert_eq!(
            classify(2, &rec, &e(9, 2), None, false).0,
            Tampering::Altered
        );
        assert_eq!(
            classify(2, &rec, &e(3, 3), None, false).0,
            Tampering::Missing
        );
        assert_eq!(
            classify(2, &rec, &e(4, 4), None, false).0,
            Tampering::Reordered
        );
        assert_eq!(
            classify(2, &rec, &e(3, 3), Some(&e(2, 2)), false).0,
            Tampering::Reordered,
            "a swap"
        );
        assert_eq!(
            classify(2, &rec, &e(2, 99), None, true).0,
            Tampering::StreamRecreated
        );
    }
}
