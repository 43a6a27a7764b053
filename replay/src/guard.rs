//! Replay alarms: a read model folds one history, and only that one. Each served tree records
//! the creation time of the stream it was folded from; the runner checks, before and while it
//! follows, that the stream is still that one and still holds at least what was folded. When
//! it is not — the stream was deleted and recreated, truncated, or is another server's — the
//! runner stops folding it and raises an alarm (`/healthz` answers 503 naming the stream,
//! `/metrics` counts it, the log has an error); the read model is kept as it was, never mixed
//! with the new history, until an operator rebuilds it (`replay rebuild`, or `POST
//! /api/v1/admin/rebuild`), which folds the new stream into a new tree and ends the alarm.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::checkpoint;

/// Where a tree records the creation time of the stream it folds.
pub const STREAM_CREATED_KEY: &[u8] = b"\0stream_created";

/// The stream's creation time recorded in `tree`, if any.
pub fn stream_created(tree: &sled::Tree) -> Result<Option<String>> {
    Ok(tree
        .get(STREAM_CREATED_KEY)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Records that `tree` folds the stream created at `created`.
pub fn set_stream_created(tree: &sled::Tree, created: DateTime<Utc>) -> Result<()> {
    tree.insert(STREAM_CREATED_KEY, created.to_rfc3339().as_bytes())?;
    Ok(())
}

/// Whether `tree` may go on folding `stream`, which now reports `created`, `last_seq` and
/// `messages`: `Some(alarm)` says why not. A tree that has not recorded a creation time yet
/// records it.
pub fn check(
    tree: &sled::Tree,
    stream: &str,
    created: Option<DateTime<Utc>>,
    last_seq: u64,
    messages: u64,
    expected_messages: u64,
) -> Result<Option<String>> {
    let folded = checkpoint(tree)?;
    match (stream_created(tree)?, created) {
        (None, Some(now)) => set_stream_created(tree, now)?,
        (Some(recorded), Some(now)) if recorded != now.to_rfc3339() => {
            return Ok(Some(format!(
                "{stream} was recreated: it was created {}, the read model folded {folded} events of the one created {recorded}; the read model is kept as it was until it is rebuilt",
                now.to_rfc3339()
            )))
        }
        _ => {}
    }
    // The contract's streams never delete (deny_delete, no limits): from sequence 1 to the
    // last, every one holds a message (with an age limit, from the first it still holds).
    // Fewer messages: they were lost on disk.
    if messages < expected_messages {
        return Ok(Some(format!(
            "{stream} is missing {} of its {expected_messages} messages: its store was damaged on disk \
             (or messages deleted); the read model is kept as it was — restore the stream from a \
             backup (lienthong restore) or, in a cluster, from a peer",
            expected_messages - messages
        )));
    }
    if last_seq < folded {
        return Ok(Some(format!(
            "{stream} holds {last_seq} events, fewer than the {folded} the read model folded: it was truncated or recreated; the read model is kept as it was until it is rebuilt"
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Changes, ReadStore};

    fn tree_with(folded: u64) -> sled::Tree {
        let store = ReadStore::temporary().unwrap();
        let tree = store.current("p").unwrap();
        let mut c = Changes::new(&tree);
        c.put(b"k".to_vec(), b"v".to_vec());
        c.commit(folded).unwrap();
        tree
    }

    #[test]
    fn the_same_stream_grown_is_fine_a_recreated_or_shorter_one_is_an_alarm() {
        let tree = tree_with(10);
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            check(&tree, "S", Some(t0), 10, 10, 10).unwrap(),
            None,
            "first sight records"
        );
        assert_eq!(
            check(&tree, "S", Some(t0), 25, 25, 25).unwrap(),
            None,
            "grown"
        );
        let holed = check(&tree, "S", Some(t0), 25, 20, 25).unwrap().unwrap();
        // With an age limit, the oldest gone is no hole: 20 held from sequence 6 to 25.
        assert_eq!(
            check(&tree, "S", Some(t0), 25, 20, 20).unwrap(),
            None,
            "expired"
        );
        assert!(holed.contains("missing 5 of its 25 messages"), "{holed}");
        let shorter = check(&tree, "S", Some(t0), 4, 4, 4).unwrap().unwrap();
        assert!(
            shorter.contains("holds 4 events, fewer than the 10"),
            "{shorter}"
        );
        let t1 = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let recreated = check(&tree, "S", Some(t1), 40, 40, 40).unwrap().unwrap();
        assert!(recreated.contains("S was recreated"), "{recreated}");
        assert!(
            recreated.contains("2026-01-01T00:00:00+00:00"),
            "{recreated}"
        );
    }
}
