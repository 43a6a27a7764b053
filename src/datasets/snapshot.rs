//! `lienthong datasets snapshot [--as-of T] --out DIR`: every dataset as it was at an
//! instant, with what it was computed from.
//!
//! The folder holds, per dataset, `<id>.csv`, `<id>.json`, `<id>.schema.json` (its columns),
//! the DCAT-AP 3 catalogue `catalog.jsonld`, and `provenance.json`: the instant, the code
//! version, the threshold of withheld counts, each dataset's file digests, and per stream the
//! sequences folded and the signed audit checkpoint that covers them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lienthong_audit::verify::checkpoints_from_audit;
use lienthong_audit::Checkpoint;
use lienthong_bus::{SchemaRegistry, StreamReader};
use lienthong_replay::datasets::{self, dcat, table_schema};
use lienthong_replay::store::PointInTime;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format of `provenance.json`.
pub const FORMAT: &str = "lienthong-datasets-snapshot/1";

/// What a snapshot was computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub format: String,
    pub created_at: DateTime<Utc>,
    /// Only events that happened at or before this instant were folded.
    pub as_of: Option<DateTime<Utc>>,
    pub code_version: String,
    /// Counts from 1 to this − 1 are withheld.
    pub min_cell: u64,
    pub licence: String,
    pub datasets: Vec<SnapshotDataset>,
    pub streams: Vec<SnapshotStream>,
}

/// One dataset of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotDataset {
    pub id: String,
    pub stream: String,
    pub read_model: String,
    pub rows: usize,
    pub withheld_cells: usize,
    /// File name → SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

/// One stream of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotStream {
    pub stream: String,
    /// Sequences 1 to this were read (events after `as_of` among them not folded).
    pub folded_to: u64,
    /// The signed checkpoint of `AUDIT` that covers `folded_to`, when there was one.
    pub checkpoint: Option<Checkpoint>,
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The first checkpoint of `stream` covering sequence `seq` (waiting up to `wait` for the
/// replay service to write it).
pub async fn covering_checkpoint(
    reader: &StreamReader,
    stream: &str,
    seq: u64,
    wait: Duration,
) -> anyhow::Result<Option<Checkpoint>> {
    if seq == 0 {
        return Ok(None);
    }
    let start = Instant::now();
    loop {
        let cps = checkpoints_from_audit(reader, stream).await?;
        if let Some(c) = cps.into_iter().find(|c| c.last_seq >= seq) {
            return Ok(Some(c));
        }
        if start.elapsed() >= wait {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes a snapshot of every dataset as of `as_of` (now when `None`) into `out`.
pub async fn snapshot(
    reader: &StreamReader,
    js: &async_nats::jetstream::Context,
    schemas: &Arc<SchemaRegistry>,
    publication: &dcat::Publication,
    as_of: Option<DateTime<Utc>>,
    out: &Path,
) -> anyhow::Result<Provenance> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (store, folded) = super::rebuild(reader, js, schemas, |_| PointInTime {
        as_of,
        until_seq: None,
    })
    .await?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<String> {
        std::fs::write(out.join(name), bytes)
            .with_context(|| format!("writing {}", out.join(name).display()))?;
        Ok(sha256(bytes))
    };
    let mut records = Vec::new();
    let mut described = Vec::new();
    for spec in datasets::specs() {
        let tree = store.current(spec.projection)?;
        let table = datasets::build(&spec, &tree, publication.min_cell)?;
        let csv = table.csv();
        let version = datasets::version(&table);
        let mut files = BTreeMap::new();
        let name = |ext: &str| format!("{}.{ext}", spec.id);
        files.insert(name("csv"), write(&name("csv"), csv.as_bytes())?);
        files.insert(
            name("json"),
            write(
                &name("json"),
                serde_json::to_string_pretty(&table.json())?.as_bytes(),
            )?,
        );
        files.insert(
            name("schema.json"),
            write(
                &name("schema.json"),
                serde_json::to_string_pretty(&table_schema(&spec, publication.min_cell))?
                    .as_bytes(),
            )?,
        );
        records.push(dcat::dataset(&spec, &table, publication, ".", &version));
        described.push(SnapshotDataset {
            id: spec.id.to_string(),
            stream: spec.stream.to_string(),
            read_model: spec.projection.to_string(),
            rows: table.rows.len(),
            withheld_cells: table.withheld,
            files,
        });
    }
    write(
        "catalog.jsonld",
        serde_json::to_string_pretty(&dcat::catalog(records, publication, "."))?.as_bytes(),
    )?;
    let mut streams = Vec::new();
    for (stream, to) in folded {
        let checkpoint = covering_checkpoint(reader, &stream, to, Duration::from_secs(15)).await?;
        if checkpoint.is_none() && to > 0 {
            eprintln!("warning: no audit checkpoint covers {stream} up to {to} yet; `datasets verify` will check the stream only");
        }
        streams.push(SnapshotStream {
            stream,
            folded_to: to,
            checkpoint,
        });
    }
    let provenance = Provenance {
        format: FORMAT.into(),
        created_at: Utc::now(),
        as_of,
        code_version: super::code_version(),
        min_cell: publication.min_cell,
        licence: publication.licence.clone(),
        datasets: described,
        streams,
    };
    write(
        "provenance.json",
        serde_json::to_string_pretty(&provenance)?.as_bytes(),
    )?;
    Ok(provenance)
}
