//! Shared, reusable datasets: the read models as tables anyone can download, cite and check.
//!
//! Each read model declares its datasets next to its projection ([`DatasetSpec`], in
//! `<subsystem>/dataset.rs`; listed by [`crate::read_models::ReadModel::datasets`]). A dataset
//! is a table of aggregates — never one row per person — with a column description
//! (Frictionless Table Schema, [`table_schema`]), served as CSV and JSON, catalogued in
//! DCAT-AP 3 ([`dcat`]), snapshotted with provenance and published to CKAN by the
//! `lienthong datasets` commands.
//!
//! **Small counts are withheld.** A count column marked [`Disclosure::Count`] whose value is
//! from 1 to `min_cell − 1` is published empty, and so is every figure computed from it
//! ([`Disclosure::DerivedFrom`]): so few reports, sign-ins or participations could single out
//! a person. The metadata says so, with the threshold.

pub mod dcat;
pub mod http;

use serde_json::{json, Map, Value};

use crate::error::Result;

/// The smallest count published (counts from 1 to this − 1 are withheld), unless configured.
pub const DEFAULT_MIN_CELL: u64 = 3;

/// A column's type, as Frictionless Table Schema names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Integer,
    Number,
    /// `YYYY-MM`.
    YearMonth,
    /// `YYYY-MM-DD`.
    Date,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::YearMonth => "yearmonth",
            Self::Date => "date",
        }
    }
}

/// Whether a column may be withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    Open,
    /// A count of people's records: withheld from 1 to `min_cell − 1`.
    Count,
    /// Computed from that count column: withheld with it.
    DerivedFrom(&'static str),
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    /// The unit of a measure (`hour`, `1` for a share between 0 and 1).
    pub unit: Option<&'static str>,
    pub title_vi: &'static str,
    pub title_en: &'static str,
    pub description: &'static str,
    pub disclosure: Disclosure,
}

impl Column {
    /// A column that is never withheld.
    pub const fn open(
        name: &'static str,
        kind: ColumnType,
        title_vi: &'static str,
        title_en: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            unit: None,
            title_vi,
            title_en,
            description,
            disclosure: Disclosure::Open,
        }
    }

    pub const fn unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    pub const fn count(mut self) -> Self {
        self.disclosure = Disclosure::Count;
        self
    }

    pub const fn derived_from(mut self, count: &'static str) -> Self {
        self.disclosure = Disclosure::DerivedFrom(count);
        self
    }
}

/// One dataset of a read model.
#[derive(Clone, Copy)]
pub struct DatasetSpec {
    /// Its identifier in URLs and catalogues, e.g. `field-reports-monthly`.
    pub id: &'static str,
    /// The read model it is computed from.
    pub projection: &'static str,
    /// The stream that read model folds.
    pub stream: &'static str,
    pub title_vi: &'static str,
    pub title_en: &'static str,
    pub description_vi: &'static str,
    pub description_en: &'static str,
    pub keywords: &'static [&'static str],
    /// EU data theme (`GOVE`, `SOCI`, `REGI`, `TECH`, …).
    pub theme: &'static str,
    pub columns: &'static [Column],
    /// The columns that identify a row.
    pub key: &'static [&'static str],
    /// Its rows, from the read model's tree, each in column order.
    pub rows: fn(&sled::Tree) -> Result<Vec<Vec<Value>>>,
    /// The dashboard panel that shows it.
    pub panel: &'static str,
}

impl std::fmt::Debug for DatasetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetSpec").field("id", &self.id).finish()
    }
}

/// A dataset computed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub id: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Cells withheld for being small counts (or computed from one).
    pub withheld: usize,
    pub min_cell: u64,
}

/// Every dataset of every read model (the registered subsystems' generic ones included).
pub fn specs() -> Vec<DatasetSpec> {
    crate::read_models::all()
        .into_iter()
        .flat_map(|m| m.datasets)
        .chain(crate::registered::dataset_specs())
        .collect()
}

/// The dataset `id`.
pub fn spec(id: &str) -> Option<DatasetSpec> {
    specs().into_iter().find(|s| s.id == id)
}

/// Computes `spec` from `tree`, withholding small counts.
pub fn build(spec: &DatasetSpec, tree: &sled::Tree, min_cell: u64) -> Result<Table> {
    let mut rows = (spec.rows)(tree)?;
    let index = |name: &str| spec.columns.iter().position(|c| c.name == name);
    let mut withheld = 0;
    for row in &mut rows {
        // Counts first, then what is computed from them.
        let mut small = Vec::new();
        for (i, c) in spec.columns.iter().enumerate() {
            if c.disclosure == Disclosure::Count {
                if let Some(n) = row.get(i).and_then(Value::as_u64) {
                    if n > 0 && n < min_cell {
                        small.push(c.name);
                        row[i] = Value::Null;
                        withheld += 1;
                    }
                }
            }
        }
        for (i, c) in spec.columns.iter().enumerate() {
            if let Disclosure::DerivedFrom(base) = c.disclosure {
                if small.contains(&base) && !row[i].is_null() {
                    row[i] = Value::Null;
                    withheld += 1;
                }
                debug_assert!(index(base).is_some(), "{}: no column {base}", spec.id);
            }
        }
    }
    Ok(Table {
        id: spec.id.to_string(),
        columns: spec.columns.iter().map(|c| c.name.to_string()).collect(),
        rows,
        withheld,
        min_cell,
    })
}

/// A table's version: `sha256:` and the first 16 hex digits of its CSV's digest. It changes
/// when, and only when, a figure does.
pub fn version(table: &Table) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "sha256:{}",
        &hex::encode(Sha256::digest(table.csv().as_bytes()))[..16]
    )
}

/// A cell as CSV writes it: empty for null, numbers as JSON writes them.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Table {
    /// RFC 4180 CSV with a header row (UTF-8).
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(&self.columns);
        for r in &self.rows {
            let _ = w.write_record(r.iter().map(cell_text));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// The rows as JSON objects.
    pub fn json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    Value::Object(
                        self.columns
                            .iter()
                            .cloned()
                            .zip(r.iter().cloned())
                            .collect::<Map<String, Value>>(),
                    )
                })
                .collect(),
        )
    }

    /// The earliest and latest month of its `month` column, if it has one.
    pub fn months(&self) -> Option<(String, String)> {
        let i = self.columns.iter().position(|c| c == "month")?;
        let months: Vec<&str> = self.rows.iter().filter_map(|r| r[i].as_str()).collect();
        Some((
            months.iter().min()?.to_string(),
            months.iter().max()?.to_string(),
        ))
    }

    /// The distinct values of its `ward` column, if it has one.
    pub fn wards(&self) -> Vec<String> {
        let Some(i) = self.columns.iter().position(|c| c == "ward") else {
            return Vec::new();
        };
        let mut w: Vec<String> = self
            .rows
            .iter()
            .filter_map(|r| r[i].as_str().map(str::to_string))
            .collect();
        w.sort();
        w.dedup();
        w
    }
}

/// The column description of `spec` (Frictionless Table Schema), saying what is withheld.
pub fn table_schema(spec: &DatasetSpec, min_cell: u64) -> Value {
    let fields: Vec<Value> = spec
        .columns
        .iter()
        .map(|c| {
            let mut f = json!({
                "name": c.name,
                "type": c.kind.name(),
                "title": c.title_en,
                "description": c.description,
                "x-title-vi": c.title_vi,
            });
            if let Some(u) = c.unit {
                f["x-unit"] = json!(u);
            }
            match c.disclosure {
                Disclosure::Open => {
                    if spec.key.contains(&c.name) {
                        f["constraints"] = json!({"required": true});
                    }
                }
                Disclosure::Count => {
                    f["constraints"] = json!({"minimum": 0});
                    f["x-withheld-below"] = json!(min_cell);
                }
                Disclosure::DerivedFrom(base) => {
                    f["x-withheld-with"] = json!(base);
                }
            }
            if matches!(c.kind, ColumnType::Number) && c.unit == Some("1") {
                f["constraints"] = json!({"minimum": 0, "maximum": 1});
            }
            f
        })
        .collect();
    json!({
        "fields": fields,
        "primaryKey": spec.key,
        "missingValues": [""],
        "x-disclosure": disclosure_note(min_cell),
    })
}

/// What the metadata says of withheld cells.
pub fn disclosure_note(min_cell: u64) -> String {
    format!(
        "Aggregates only. Counts from 1 to {} are withheld (empty), and so are figures computed from them, so no person can be singled out (minimum cell size {min_cell}).",
        min_cell.saturating_sub(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[Column] = &[
        Column::open("month", ColumnType::YearMonth, "Tháng", "Month", "month"),
        Column::open("n", ColumnType::Integer, "Số", "Count", "count").count(),
        Column::open("median", ColumnType::Number, "Trung vị", "Median", "hours")
            .unit("hour")
            .derived_from("n"),
    ];

    fn rows(_: &sled::Tree) -> Result<Vec<Vec<Value>>> {
        Ok(vec![
            vec![json!("2023-01"), json!(7), json!(12.5)],
            vec![json!("2023-02"), json!(2), json!(3.0)],
            vec![json!("2023-03"), json!(0), Value::Null],
        ])
    }

    const SPEC: DatasetSpec = DatasetSpec {
        id: "test",
        projection: "test",
        stream: "TEST",
        title_vi: "",
        title_en: "",
        description_vi: "",
        description_en: "",
        keywords: &[],
        theme: "GOVE",
        columns: COLUMNS,
        key: &["month"],
        rows,
        panel: "",
    };

    #[test]
    fn small_counts_and_what_is_computed_from_them_are_withheld() {
        let store = crate::store::ReadStore::temporary().unwrap();
        let tree = store.current("test").unwrap();
        let t = build(&SPEC, &tree, 3).unwrap();
        assert_eq!(t.rows[0], vec![json!("2023-01"), json!(7), json!(12.5)]);
        assert_eq!(t.rows[1], vec![json!("2023-02"), Value::Null, Value::Null]);
        assert_eq!(t.rows[2][1], json!(0), "zero singles nobody out");
        assert_eq!(t.withheld, 2);
        assert_eq!(
            t.csv(),
            "month,n,median\n2023-01,7,12.5\n2023-02,,\n2023-03,0,\n"
        );
        assert_eq!(t.json()[1]["n"], Value::Null);
        assert_eq!(t.months(), Some(("2023-01".into(), "2023-03".into())));
        let schema = table_schema(&SPEC, 3);
        assert_eq!(schema["fields"][1]["x-withheld-below"], 3);
        assert_eq!(schema["fields"][2]["x-unit"], "hour");
        assert!(build(&SPEC, &tree, 1).unwrap().withheld == 0);
    }
}
