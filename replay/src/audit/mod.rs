//! Tamper-evident history: a hash chain per stream, Ed25519-signed checkpoints in `AUDIT`,
//! verification against them, and verifiable exports.
//!
//! - [`chain`]: content digests and the chain.
//! - [`checkpoint`]: signed checkpoints ([`Checkpoint`]) and keys.
//! - [`writer`]: follows the streams and writes checkpoints ([`AuditWriter`]).
//! - [`verify`]: recomputes and compares, naming the first bad sequence ([`verify_stream`]).
//! - [`export`]: exports with chain hashes and covering checkpoints; offline verification.

pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod verify;
pub mod writer;

pub use checkpoint::Checkpoint;

use async_nats::jetstream::{self, consumer};

use crate::error::{ReplayError, Result};

/// A NATS failure while doing `operation`.
pub(crate) fn nats(operation: String, e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Nats {
        operation,
        reason: e.to_string(),
    }
}

/// Reads `stream` in order from sequence `start` (1: the beginning), only `filter` when given,
/// with an ordered consumer (nothing to acknowledge, nothing left behind).
pub(crate) async fn read_from(
    js: &jetstream::Context,
    stream: &str,
    start: u64,
    filter: Option<String>,
) -> Result<consumer::pull::Ordered> {
    let s = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| nats(format!("opening {stream}"), e))?;
    let c = s
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: if start <= 1 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                }
            },
            filter_subject: filter.unwrap_or_default(),
            ..Default::default()
        })
        .await
        .map_err(|e| nats(format!("reading {stream}"), e))?;
    c.messages()
        .await
        .map_err(|e| nats(format!("reading {stream}"), e))
}
pub use verify::{verify_stream, StreamReport, Tampering};
pub use writer::{AuditWriter, AUDITED_STREAMS};
