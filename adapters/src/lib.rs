//! # Lienthong adapters
//!
//! One module per subsystem: each maps the subsystem's own records to CloudEvents (pure,
//! unit-tested from the fixtures), polls or receives them (I/O), and publishes through the
//! bus's [`Publisher`](lienthong_bus::Publisher). Each comes with a simulator of its
//! subsystem for the demo and the tests. Nothing here knows a projection.
//!
//! # Layout
//! - [`documents`]: edXML exchange and the document register ([`DocumentsAdapter`](documents::DocumentsAdapter)).
//! - [`field_reports`]: citizen field reports, Open311 ([`FieldReportsAdapter`]).
//! - [`wards`]: the 18 wards and communes of Phan Thiết, and ward derivation ([`Wards`]).
//! - [`pii`]: masking personal data in free text.
//! - [`publish`]: publishing a batch and counting the outcome.
//! - [`xml`]: a small element tree for edXML.
//! - [`state`]: adapter cursors in `ADAPTER_STATE` ([`state::AdapterState`]).
//! - [`error`]: what can go wrong, [`AdapterError`].
//! - [`AdapterConfig`]: the closed set of adapter configurations.

pub mod documents;
pub mod error;
pub mod field_reports;
pub mod pii;
pub mod publish;
pub mod state;
pub mod wards;
pub mod xml;

pub use error::AdapterError;
pub use field_reports::{FieldReportsAdapter, FieldReportsConfig};
pub use wards::Wards;

use serde::Deserialize;

/// An adapter's configuration file: one table named after the subsystem.
///
/// ```toml
/// [field_reports]
/// endpoint = "http://127.0.0.1:8311/open311/v2/"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum AdapterConfig {
    #[serde(rename = "field_reports")]
    FieldReports(FieldReportsConfig),
}

impl AdapterConfig {
    pub fn subsystem(&self) -> &'static str {
        match self {
            Self::FieldReports(_) => "field_reports",
        }
    }
}
