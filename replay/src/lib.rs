//! # Lienthong replay
//!
//! Folds the event streams into read models in sled and serves them over HTTP. Projections
//! are deterministic folds without side effects; each commits its writes and its checkpoint
//! in one atomic batch, so a crash and restart never double-counts or skips.
//!
//! # Layout
//! - [`audit_writer`]: follows the audited streams and writes signed checkpoints to `AUDIT`
//!   (verifying and exporting are the auditors' tool, the `lienthong-audit` crate).
//! - [`upcast`]: older event versions brought to the current shape before projections.
//! - [`store`]: the sled store, generations and swaps, atomic batches ([`ReadStore`], [`Changes`]).
//! - [`projection`]: the [`Projection`] trait and [`ProjectedEvent`].
//! - [`field_reports`], [`documents`], [`sso`], [`open_data`], [`meetings`]: one read model per subsystem,
//!   each a projection (`mod.rs`) and its endpoints (`http.rs`).
//! - [`field_reports`]: citizen reports: state, counts, resolution ([`FieldReportsProjection`]).
//! - [`documents`]: exchange per agency and month, electronic ratio, document trails.
//! - [`sso`]: registered and active users, sign-ins, failures, lockouts.
//! - [`open_data`]: the catalogue, withdrawn datasets marked, DCAT.
//! - [`meetings`]: online meetings with the wards: per month, wards connected, durations.
//! - [`guard`]: replay alarms — a read model never folds a recreated or truncated stream.
//! - [`runner`]: following a stream live, and rebuilding beside and swapping ([`Runner`]).
//! - [`decode`]: receiving and decoding stored events ahead of a fold, in stream order.
//! - [`read_models`]: the read models, listed once: projection, endpoints, KPI section.
//! - [`reference`]: the city's wards (names, residents, map tiles) and sign-on applications.
//! - [`dashboard`]: the operations centre's panels, live feed and history integrity.
//! - [`api`]: what every endpoint shares (state, problem answers, CSV).
//! - [`http`]: the generic endpoints (KPIs, health, metrics, schemas) and the IOC dashboard.
//! - [`service`]: the whole service ([`service::serve`]).
//! - [`error`]: what can go wrong, [`ReplayError`].

pub mod api;
pub mod audit_writer;
pub mod dashboard;
pub mod datasets;
pub mod decode;
pub mod documents;
pub mod error;
pub mod field_reports;
pub mod guard;
pub mod http;
pub mod meetings;
pub mod open_data;
pub mod projection;
pub mod read_models;
pub mod reference;
pub mod registered;
pub mod runner;
pub mod seal;
pub mod service;
pub mod sso;
pub mod store;
pub mod upcast;

pub use error::{ReplayError, Result};
pub use field_reports::{FieldReportStats, FieldReportsProjection, ReportView};
pub use projection::{ProjectedEvent, Projection};
pub use runner::{Metrics, Runner};
pub use store::{Changes, ReadStore};
