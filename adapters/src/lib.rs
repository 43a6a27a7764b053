//! # Lienthong adapters
//!
//! One module per subsystem: each maps the subsystem's own records to CloudEvents (pure,
//! unit-tested from the fixtures), polls or receives them (I/O), and publishes through the
//! bus's [`Publisher`](lienthong_bus::Publisher). Each comes with a simulator of its
//! subsystem for the demo and the tests. Nothing here knows a projection.
//!
//! # Layout
//! - [`demo`]: the demo city: each subsystem's synthetic year, simulator and adapter.
//! - [`demo_events`]: that year's field reports and documents as events (benchmarks).
//! - [`documents`]: edXML exchange and the document register ([`DocumentsAdapter`](documents::DocumentsAdapter)).
//! - [`field_reports`]: citizen field reports, Open311 ([`FieldReportsAdapter`]).
//! - [`sso`]: central sign-on, Keycloak events, pseudonymised ([`SsoAdapter`](sso::SsoAdapter)).
//! - [`open_data`]: the CKAN open-data catalogue ([`OpenDataAdapter`](open_data::OpenDataAdapter)).
//! - [`meetings`]: online meetings, BigBlueButton and Jitsi ([`MeetingsAdapter`](meetings::MeetingsAdapter)).
//! - [`devices`]: monitoring stations' data files, for the registered subsystem `devices` ([`DevicesAdapter`](devices::DevicesAdapter)).
//! - [`ingress`]: the HTTP CloudEvents ingress for systems not written in Rust ([`Ingress`](ingress::Ingress)).
//! - [`wards`]: the 18 wards and communes of Phan Thiết, and ward derivation ([`Wards`]).
//! - [`pii`]: masking personal data in free text.
//! - [`pseudonym`]: keyed pseudonyms for people (sign-on users, meeting participants).
//! - [`publish`]: publishing a batch and counting the outcome.
//! - [`push`]: HTTP push endpoints beside polling, and problem answers.
//! - [`xml`]: a small element tree for edXML.
//! - [`state`]: adapter cursors in `ADAPTER_STATE` ([`state::AdapterState`]).
//! - [`error`]: what can go wrong, [`AdapterError`].
//! - [`AdapterConfig`]: the closed set of adapter configurations (one line per adapter).

pub mod demo;
pub mod demo_events;
pub mod devices;
pub mod documents;
pub mod error;
pub mod field_reports;
pub mod ingress;
pub mod meetings;
pub mod open_data;
pub mod pii;
pub mod poll;
pub mod pseudonym;
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

/// What every adapter gets from outside: the bus (as its own role), the schemas, and the
/// process's counters (each input path counts every record's outcome there).
#[derive(Clone)]
pub struct AdapterContext {
    pub js: async_nats::jetstream::Context,
    pub registry: Arc<lienthong_bus::SchemaRegistry>,
    pub metrics: lienthong_bus::Metrics,
    /// What the server refuses the connection: a refused publish or state write fails at
    /// once, naming the role and what it may not do.
    pub refusals: lienthong_bus::Refusals,
    /// How the adapter's push endpoints listen (HTTPS with a certificate).
    pub transport: lienthong_bus::tls::Transport,
}

impl AdapterContext {
    /// A publisher on this connection, its events carrying `source`.
    pub fn publisher(&self, source: impl Into<String>) -> lienthong_bus::Publisher {
        lienthong_bus::Publisher::new(self.js.clone(), self.registry.clone(), source)
            .with_refusals(self.refusals.clone())
    }
}

/// Declares the closed set of adapters, one line each: the configuration enum (one table
/// named after the subsystem), its subsystem names, and running the chosen adapter.
macro_rules! adapters {
    ($( $variant:ident($name:literal, $config:ty, $adapter:ty) ),* $(,)?) => {
        /// An adapter's configuration file: one table named after the subsystem.
        ///
        /// ```toml
        /// [field_reports]
        /// endpoint = "http://127.0.0.1:8311/open311/v2/"
        /// ```
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub enum AdapterConfig {
            $( #[serde(rename = $name)] $variant($config), )*
        }

        /// The subsystems that have an adapter here.
        pub const ADAPTERS: &[&str] = &[$($name),*];

        impl AdapterConfig {
            pub fn subsystem(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $name, )*
                }
            }

            /// Builds the adapter (validating its configuration, connecting, checking its
            /// source) and runs it until `shutdown`.
            pub async fn run(
                self,
                ctx: AdapterContext,
                shutdown: impl std::future::Future<Output = ()> + Send + 'static,
            ) -> Result<(), AdapterError> {
                match self {
                    $( Self::$variant(c) => <$adapter>::build(c, ctx).await?.run(shutdown).await, )*
                }
            }
        }
    };
}

adapters! {
    FieldReports("field_reports", field_reports::FieldReportsConfig, field_reports::FieldReportsAdapter),
    Documents("documents", documents::DocumentsConfig, documents::DocumentsAdapter),
    Sso("sso", sso::SsoConfig, sso::SsoAdapter),
    OpenData("open_data", open_data::OpenDataConfig, open_data::OpenDataAdapter),
    Meetings("meetings", meetings::MeetingsConfig, meetings::MeetingsAdapter),
    // A subsystem registered on the running bus (its schemas come from the registry).
    Devices("devices", devices::DevicesConfig, devices::DevicesAdapter),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_adapter_has_an_example_config_that_parses_as_its_adapter() {
        for subsystem in ADAPTERS {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(format!("{subsystem}.toml"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let cfg: AdapterConfig =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{subsystem}: {e}"));
            assert_eq!(cfg.subsystem(), *subsystem);
        }
    }
}
