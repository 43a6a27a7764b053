//! # Lienthong audit
//!
//! The auditors' tool: tamper-evident history without the replay service. Every audited
//! stream is hash-chained; the replay service (or `lienthong audit checkpoint`) writes
//! Ed25519-signed checkpoints of the chain to `AUDIT`; auditors recompute the chains and
//! compare, and export verifiable extracts.
//!
//! # Layout
//! - [`chain`]: content digests and the chain ([`chain::Entry`]).
//! - [`checkpoint`]: signed checkpoints ([`Checkpoint`]) and keys.
//! - [`read`]: reading a stream in order, its creation time, its checkpoints in `AUDIT`.
//! - [`verify`]: recomputes and compares, naming the first bad sequence ([`verify_stream`]).
//! - [`export`]: exports with chain hashes and covering checkpoints; offline verification.
//! - [`error`]: what can go wrong, [`AuditError`].
//!
//! Writing checkpoints (following the streams) is the replay service's job
//! (`lienthong_replay::audit_writer`); nothing here writes to the bus.

pub mod chain;
pub mod checkpoint;
pub mod error;
pub mod export;
pub mod read;
pub mod verify;

pub use checkpoint::Checkpoint;
pub use error::{AuditError, Result};
pub use verify::{verify_stream, StreamReport, Tampering};
