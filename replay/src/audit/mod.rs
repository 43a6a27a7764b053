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
pub use verify::{verify_stream, StreamReport, Tampering};
pub use writer::{AuditWriter, AUDITED_STREAMS};
