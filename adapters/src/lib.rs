//! # Lienthong adapters
//!
//! One module per subsystem: each maps the subsystem's own records to CloudEvents (pure,
//! unit-tested from the fixtures), polls or receives them (I/O), and publishes through the
//! bus's [`Publisher`](lienthong_bus::Publisher). Each comes with a simulator of its
//! subsystem for the demo and the tests. Nothing here knows a projection.
//!
//! # Layout
//! - [`demo`]: a synthetic city year across the four subsystems, with its totals.
//! - [`demo_events`]: that year's field reports and documents as events (benchmarks).
//! - [`documents`]: edXML exchange and the document register ([`DocumentsAdapter`](documents::DocumentsAdapter)).
//! - [`field_reports`]: citizen field reports, Open311 ([`FieldReportsAdapter`]).
//! - [`sso`]: central sign-on, Keycloak events, pseudonymised ([`SsoAdapter`](sso::SsoAdapter)).
//! - [`open_data`]: the CKAN open-data catalogue ([`OpenDataAdapter`](open_data::OpenDataAdapter)).
//! - [`ingress`]: the HTTP CloudEvents ingress for systems not written in Rust ([`Ingress`](ingress::Ingress)).
//! - [`wards`]: the 18 wards and communes of Phan Thiết, and ward derivation ([`Wards`]).
//! - [`pii`]: masking personal data in free text.
//! - [`publish`]: publishing a batch and counting the outcome.
//! - [`push`]: HTTP push endpoints beside polling, and problem answers.
//! - [`xml`]: a small element tree for edXML.
//! - [`state`]: adapter cursors in `ADAPTER_STATE` ([`state::AdapterState`]).
//! - [`error`]: what can go wrong, [`AdapterError`].
//! - [`AdapterConfig`]: the closed set of adapter configurations.

pub mod demo;
pub mod demo_events;
pub mod documents;
pub mod error;
pub mod field_reports;
pub mod ingress;
pub mod open_data;
pub mod pii;
pub mod poll;
pub mod publish;
pub mod push;
pub mod sso;
pub mod state;
pub mod wards;
pub mod xml;

pub use error::AdapterError;
pub use field_reports::{FieldReportsAdapter, FieldReportsConfig};
pub use wards::Wards;

use std::sync::Arc;

use serde::Deserialize;

/// What every adapter gets from outside: the bus (as its own role) and the schemas.
#[derive(Clone)]
pub struct AdapterContext {
    pub js: async_nats::jetstream::Context,
    pub registry: Arc<lienthong_bus::SchemaRegistry>,
}

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
    #[serde(rename = "documents")]
    Documents(documents::DocumentsConfig),
    #[serde(rename = "sso")]
    Sso(sso::SsoConfig),
    #[serde(rename = "open_data")]
    OpenData(open_data::OpenDataConfig),
}

impl AdapterConfig {
    pub fn subsystem(&self) -> &'static str {
        match self {
            Self::FieldReports(_) => "field_reports",
            Self::Documents(_) => "documents",
            Self::Sso(_) => "sso",
            Self::OpenData(_) => "open_data",
        }
    }

    /// Builds the adapter (validating its configuration, connecting, checking its source)
    /// and runs it until `shutdown`.
    pub async fn run(
        self,
        ctx: AdapterContext,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        match self {
            Self::FieldReports(c) => {
                FieldReportsAdapter::build(c, ctx)
                    .await?
                    .run(shutdown)
                    .await
            }
            Self::Documents(c) => {
                documents::DocumentsAdapter::build(c, ctx)
                    .await?
                    .run(shutdown)
                    .await
            }
            Self::Sso(c) => sso::SsoAdapter::build(c, ctx).await?.run(shutdown).await,
            Self::OpenData(c) => {
                open_data::OpenDataAdapter::build(c, ctx)
                    .await?
                    .run(shutdown)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_config_parses_as_its_adapter() {
        for (text, subsystem) in [
            (
                include_str!("../examples/field_reports.toml"),
                "field_reports",
            ),
            (include_str!("../examples/documents.toml"), "documents"),
            (include_str!("../examples/sso.toml"), "sso"),
            (include_str!("../examples/open_data.toml"), "open_data"),
        ] {
            let cfg: AdapterConfig =
                toml::from_str(text).unwrap_or_else(|e| panic!("{subsystem}: {e}"));
            assert_eq!(cfg.subsystem(), subsystem);
        }
    }
}
