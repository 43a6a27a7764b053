//! The shared datasets beyond the service: dated snapshots with provenance ([`snapshot`]),
//! their verification against the audited history ([`verify`]), and publication to the
//! city's CKAN portal ([`ckan`]).
//!
//! Snapshots and verification read the streams by direct get (no consumer), so anyone with
//! read-only credentials — the auditor's — can check a published figure.

pub mod ckan;
pub mod snapshot;
pub mod verify;

use std::sync::Arc;

use lienthong_bus::{SchemaRegistry, StreamReader};
use lienthong_replay::store::{PointInTime, ReadStore};
use lienthong_replay::Metrics;

/// The code that computed a snapshot: the crate version and, when built from git, the commit.
pub fn code_version() -> String {
    match option_env!("LIENTHONG_GIT_COMMIT") {
        Some(c) if !c.is_empty() => format!("lienthong {} ({c})", env!("CARGO_PKG_VERSION")),
        _ => format!("lienthong {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Every read model rebuilt into a temporary store as of `at`, read by direct get; returns the
/// store and, per stream, the last sequence folded.
pub async fn rebuild(
    reader: &StreamReader,
    js: &async_nats::jetstream::Context,
    schemas: &Arc<SchemaRegistry>,
    at: impl Fn(&str) -> PointInTime,
) -> anyhow::Result<(ReadStore, std::collections::BTreeMap<String, u64>)> {
    let store = ReadStore::temporary()?;
    let metrics = Arc::new(Metrics::default());
    let mut folded = std::collections::BTreeMap::new();
    for runner in lienthong_replay::service::runners(js, schemas, &store, &metrics) {
        let runner = runner.reading_directly(reader.clone());
        let stream = lienthong_replay::read_models::all()
            .into_iter()
            .find(|m| m.projection.name() == runner.projection_name())
            .map(|m| m.projection.stream())
            .unwrap_or_default();
        let rebuilt = runner.rebuild_at(at(stream), &|_, _| {}).await?;
        folded.insert(stream.to_string(), rebuilt.checkpoint);
    }
    Ok((store, folded))
}
