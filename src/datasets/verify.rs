//! `lienthong datasets verify DIR`: does a snapshot say what the audited history says?
//!
//! 1. **The history is the audited one**: each stream the snapshot names is checked against
//!    the signed checkpoints in `AUDIT` with the published key (hash chain, signatures), up to
//!    what was folded; the checkpoint the snapshot recorded must be one of them.
//! 2. **The figures come from it**: every read model is rebuilt from the streams exactly as the
//!    snapshot was (same instant, same sequences), the datasets computed again, and each file
//!    compared cell by cell. A difference names the dataset, the row (by its key) and the
//!    column.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use lienthong_audit::verify::{checkpoints_from_audit, verify_stream};
use lienthong_bus::{SchemaRegistry, StreamReader};
use lienthong_replay::datasets::{self, cell_text, DatasetSpec};
use lienthong_replay::store::PointInTime;

use super::snapshot::{Provenance, FORMAT};

/// What verification found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Each difference or fault, in words.
    pub problems: Vec<String>,
    /// What was checked and held.
    pub checked: Vec<String>,
}

impl Findings {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads a snapshot's provenance.
pub fn provenance(dir: &Path) -> anyhow::Result<Provenance> {
    let path = dir.join("provenance.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is this a snapshot folder?)", path.display()))?;
    let p: Provenance = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a provenance record", path.display()))?;
    anyhow::ensure!(
        p.format == FORMAT,
        "{}: format {:?}, this version reads {FORMAT}",
        path.display(),
        p.format
    );
    Ok(p)
}

/// The key of row `row` of `spec`, in words (`month=2023-03, ward=lac-dao`).
fn key_of(spec: &DatasetSpec, header: &[String], row: &[String]) -> String {
    spec.key
        .iter()
        .filter_map(|k| {
            let i = header.iter().position(|h| h == k)?;
            Some(format!(
                "{k}={}",
                row.get(i).map(String::as_str).unwrap_or("")
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_csv(path: &Path) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        rows.push(rec?.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// Compares a snapshot's CSV with the table computed again; one line per difference.
pub fn compare(
    spec: &DatasetSpec,
    header: &[String],
    rows: &[Vec<String>],
    table: &datasets::Table,
) -> Vec<String> {
    let mut out = Vec::new();
    if header != table.columns.as_slice() {
        out.push(format!(
            "dataset {}: columns {:?}, the history gives {:?}",
            spec.id, header, table.columns
        ));
        return out;
    }
    let computed: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let key = |r: &[String]| key_of(spec, header, r);
    let mut mine: std::collections::BTreeMap<String, (usize, &Vec<String>)> =
        std::collections::BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        // A second row with the same key would otherwise hide one of the two.
        if let Some((first, _)) = mine.insert(key(r), (i, r)) {
            out.push(format!(
                "dataset {}, row {} ({}): the same key as row {}",
                spec.id,
                i + 1,
                key(r),
                first + 1
            ));
        }
    }
    let theirs: std::collections::BTreeMap<String, &Vec<String>> =
        computed.iter().map(|r| (key(r), r)).collect();
    for (k, (i, r)) in &mine {
        match theirs.get(k) {
            None => out.push(format!(
                "dataset {}, row {} ({k}): not in the history",
                spec.id,
                i + 1
            )),
            Some(h) => {
                for (c, name) in header.iter().enumerate() {
                    let (a, b) = (r.get(c).map(String::as_str).unwrap_or(""), h[c].as_str());
                    if a != b {
                        out.push(format!(
                            "dataset {}, row {} ({k}), column {name}: the snapshot says {a:?}, the history gives {b:?}",
                            spec.id,
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    for k in theirs.keys().filter(|k| !mine.contains_key(*k)) {
        out.push(format!(
            "dataset {}: the history has a row ({k}) the snapshot lacks",
            spec.id
        ));
    }
    out
}

/// Verifies the snapshot in `dir` against the streams and their signed checkpoints.
pub async fn verify(
    dir: &Path,
    reader: &StreamReader,
    js: &async_nats::jetstream::Context,
    schemas: &Arc<SchemaRegistry>,
    key: &VerifyingKey,
) -> anyhow::Result<Findings> {
    let p = provenance(dir)?;
    let mut f = Findings::default();

    // 1. The history up to what was folded is the audited one.
    for s in &p.streams {
        if s.folded_to == 0 {
            continue;
        }
        let cps = checkpoints_from_audit(reader, &s.stream).await?;
        if let Some(recorded) = &s.checkpoint {
            if let Err(e) = recorded.verify(key) {
                f.problems.push(format!(
                    "stream {}: the checkpoint the snapshot recorded does not verify with this key: {e:?}",
                    s.stream
                ));
            } else if !cps.iter().any(|c| c.signature == recorded.signature) {
                f.problems.push(format!(
                    "stream {}: the checkpoint the snapshot recorded (to sequence {}) is not in AUDIT",
                    s.stream, recorded.last_seq
                ));
            }
        }
        let report = verify_stream(reader, &s.stream, cps, key, &|_, _| {}).await?;
        if !report.intact() {
            f.problems.push(format!("stream {}: {report}", s.stream));
        } else if report.covered_to < s.folded_to {
            f.problems.push(format!(
                "stream {}: checkpoints cover sequences 1 to {} only; the snapshot folded to {}",
                s.stream, report.covered_to, s.folded_to
            ));
        } else {
            f.checked.push(format!(
                "stream {}: sequences 1–{} match the signed checkpoints",
                s.stream, s.folded_to
            ));
        }
    }

    // 2. The figures are what the history gives.
    let folded: std::collections::BTreeMap<&str, u64> = p
        .streams
        .iter()
        .map(|s| (s.stream.as_str(), s.folded_to))
        .collect();
    let (store, _) = super::rebuild(reader, js, schemas, |stream| PointInTime {
        as_of: p.as_of,
        until_seq: Some(folded.get(stream).copied().unwrap_or(0)),
    })
    .await?;
    for d in &p.datasets {
        let Some(spec) = datasets::spec(&d.id) else {
            f.problems.push(format!(
                "dataset {}: this version of lienthong does not know it",
                d.id
            ));
            continue;
        };
        let tree = store.current(spec.projection)?;
        let table = datasets::build(&spec, &tree, p.min_cell)?;
        let (header, rows) = read_csv(&dir.join(format!("{}.csv", d.id)))?;
        let mut diffs = compare(&spec, &header, &rows, &table);
        let schema_path = dir.join(format!("{}.schema.json", d.id));
        match std::fs::read(&schema_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            Some(v) if v == datasets::table_schema(&spec, p.min_cell) => {}
            _ => diffs.push(format!(
                "dataset {}: {} is missing or not the column description of this dataset",
                d.id,
                schema_path.display()
            )),
        }
        let json_path = dir.join(format!("{}.json", d.id));
        match std::fs::read(&json_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            Some(v) if v == table.json() => {}
            Some(_) => diffs.push(format!(
                "dataset {}: {}.json differs from the history (compare its CSV for the rows)",
                d.id, d.id
            )),
            None => diffs.push(format!(
                "dataset {}: {} is missing or not JSON",
                d.id,
                json_path.display()
            )),
        }
        if diffs.is_empty() {
            f.checked.push(format!(
                "dataset {}: {} rows equal to the history's",
                d.id,
                rows.len()
            ));
        }
        f.problems.extend(diffs);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> datasets::Table {
        datasets::Table {
            id: "sign-on-monthly".into(),
            columns: ["month", "application", "logins", "failures", "active_users"]
                .map(String::from)
                .to_vec(),
            rows: vec![
                vec![
                    json!("2023-01"),
                    json!("dvc"),
                    json!(40),
                    json!(3),
                    json!(12),
                ],
                vec![
                    json!("2023-02"),
                    json!("dvc"),
                    json!(41),
                    json!(0),
                    json!(null),
                ],
            ],
            withheld: 1,
            min_cell: 3,
        }
    }

    fn csv_of(t: &datasets::Table) -> (Vec<String>, Vec<Vec<String>>) {
        (
            t.columns.clone(),
            t.rows
                .iter()
                .map(|r| r.iter().map(cell_text).collect())
                .collect(),
        )
    }

    #[test]
    fn differences_name_the_row_and_column_and_duplicates_cannot_hide_one() {
        let spec = datasets::spec("sign-on-monthly").unwrap();
        let t = table();
        assert_eq!(
            t.columns,
            spec.columns.iter().map(|c| c.name).collect::<Vec<_>>()
        );
        let (header, rows) = csv_of(&t);
        assert!(compare(&spec, &header, &rows, &t).is_empty());

        let mut changed = rows.clone();
        changed[1][2] = "42".into();
        assert_eq!(
            compare(&spec, &header, &changed, &t),
            vec![
                "dataset sign-on-monthly, row 2 (month=2023-02, application=dvc), column logins: the snapshot says \"42\", the history gives \"41\""
            ]
        );

        // A forged row placed before the true one, same key.
        let mut forged = rows.clone();
        let mut fake = rows[0].clone();
        fake[2] = "400".into();
        forged.insert(0, fake);
        let d = compare(&spec, &header, &forged, &t);
        assert!(
            d.iter().any(
                |l| l.contains("row 2 (month=2023-01, application=dvc): the same key as row 1")
            ),
            "{d:?}"
        );

        let mut missing = rows.clone();
        missing.pop();
        assert_eq!(
            compare(&spec, &header, &missing, &t),
            vec!["dataset sign-on-monthly: the history has a row (month=2023-02, application=dvc) the snapshot lacks"]
        );
    }
}
