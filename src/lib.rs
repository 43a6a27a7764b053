//! # Lienthong
//!
//! The library behind the `lienthong` binary: what runs several crates together.
//!
//! # Layout
//! - [`stack`]: the whole bus on one machine ([`Stack`]): what `lienthong up` runs, and what
//!   tests start in-process.
//! - [`supervise`]: watching servers and tasks (restart a dead server, stop on a failure).
//! - [`nodes`]: nats-server nodes (one, or a cluster) for the crash campaign and the benchmark.
//! - [`site`]: a ward's or an agency's site, a leaf node of the hub (`lienthong site up`).
//! - [`crosscheck`]: the subsystem registry against the server configuration, the streams, the
//!   schemas and the read models.
//! - [`deploy`]: a city's deployment from one inventory: bundles per host, registrations,
//!   checks from outside.
//! - [`datasets`]: the shared datasets' snapshots, their verification, CKAN publication.
//! - [`backup`]: backups of a running bus, their offline check, restores.
//! - [`error`]: what can go wrong, [`StackError`].
//!
//! The crates: `lienthong-bus` (envelope, NATS binding, registry, schemas, publisher),
//! `lienthong-adapters` (one per subsystem, simulators, the ingress), `lienthong-replay`
//! (read models, HTTP API, dashboard, datasets), `lienthong-audit` (the auditors' tool),
//! `lienthong-deliver` (webhooks).

pub mod backup;
pub mod crosscheck;
pub mod datasets;
pub mod deploy;
pub mod error;
pub mod nodes;
pub mod site;
pub mod stack;
pub mod standby;
pub mod supervise;

pub use error::StackError;
pub use stack::{Stack, StackOptions};
