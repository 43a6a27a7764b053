//! The generic read model of every subsystem registered on the running bus
//! (`lienthong subsystem register`): no code of its own, so one fold fits all.
//!
//! For each registered subsystem, a tree named after it holds:
//! - `c/<type>/<YYYY-MM>`: events of each type per month (the subsystem's time, UTC+7);
//! - `l/<key>`: the latest state of each aggregate (the CloudEvents `subject`): the event
//!   with the latest subsystem time (the later one in the stream on a tie), its type, id,
//!   time, sequence, schema version and data.
//!
//! It is served under `/api/v1/registered/…` ([`http`]) and is a dataset of the DCAT
//! catalogue (`<name>-monthly`, [`dataset_specs`]). The replay service starts folding a
//! subsystem as soon as it has read its registration ([`crate::service::serve`]).

pub mod http;

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::datasets::{Column, ColumnType as T, DatasetSpec};
use crate::error::Result;
use crate::projection::{json_of, ProjectedEvent, Projection};
use crate::store::{decode_u64, Changes};
use lienthong_bus::registry::live::intern;

/// The latest state of one aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    pub key: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub id: String,
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    pub sequence: u64,
    pub version: u32,
    pub data: Value,
}

/// The fold of one registered subsystem's stream.
pub struct RegisteredProjection {
    pub subsystem: &'static lienthong_bus::registry::Subsystem,
}

fn month(ev: &ProjectedEvent) -> String {
    let tz = FixedOffset::east_opt(7 * 3600).expect("UTC+7");
    ev.time
        .map(|t| t.with_timezone(&tz).format("%Y-%m").to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Projection for RegisteredProjection {
    fn name(&self) -> &'static str {
        self.subsystem.name
    }

    fn stream(&self) -> &'static str {
        self.subsystem.stream
    }

    fn apply(&self, changes: &mut Changes<'_>, ev: &ProjectedEvent) -> Result<()> {
        // The key and the subsystem's time where the registration says they are in the data
        // (the envelope's `subject` and `time` when the type is not registered any more).
        let (key, time) = self.key_and_time(ev);
        let ev = &ProjectedEvent {
            key,
            time,
            ..ev.clone()
        };
        changes.add(format!("c/{}/{}", ev.ty, month(ev)).into_bytes(), 1)?;
        let Some(key) = &ev.key else {
            return Ok(());
        };
        let k = format!("l/{key}").into_bytes();
        let newer = match changes.get_json::<Latest>(&k)? {
            Some(have) => ev.time >= have.time,
            None => true,
        };
        if newer {
            changes.put_json(
                k,
                Latest {
                    key: key.clone(),
                    ty: ev.ty.clone(),
                    id: ev.id.clone(),
                    time: ev.time,
                    sequence: ev.sequence,
                    version: ev.version,
                    data: json_of(&ev.data),
                },
            )?;
        }
        Ok(())
    }
}

impl RegisteredProjection {
    fn key_and_time(
        &self,
        ev: &ProjectedEvent,
    ) -> (Option<String>, Option<chrono::DateTime<chrono::Utc>>) {
        use sonic_rs::JsonValueTrait;
        let pointers =
            lienthong_bus::registry::live::registration(self.subsystem.name).and_then(|r| {
                r.spec
                    .events
                    .iter()
                    .find(|e| e.ty == ev.ty)
                    .map(|e| (e.key.clone(), e.time.clone()))
            });
        let Some((key, time)) = pointers else {
            return (ev.key.clone(), ev.time);
        };
        let key = crate::projection::pointer(&ev.data, &key)
            .and_then(|v| v.as_str().map(str::to_string))
            .or_else(|| ev.key.clone());
        let time = crate::projection::pointer(&ev.data, &time)
            .and_then(|v| v.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc())
            .or(ev.time);
        (key, time)
    }
}

/// What a registered subsystem's tree says.
pub struct RegisteredView<'a> {
    pub tree: &'a sled::Tree,
}

impl RegisteredView<'_> {
    /// `(type, month, events)`, by type then month.
    pub fn counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"c/") {
            let (k, v) = kv?;
            let k = String::from_utf8_lossy(&k[2..]).to_string();
            if let Some((ty, month)) = k.rsplit_once('/') {
                out.push((ty.to_string(), month.to_string(), decode_u64(&v)));
            }
        }
        Ok(out)
    }

    /// The latest states, from `after` (a key, exclusive), at most `limit`.
    pub fn latest(&self, after: Option<&str>, limit: usize) -> Result<Vec<Latest>> {
        let start = match after {
            Some(a) => {
                let mut k = format!("l/{a}").into_bytes();
                k.push(0);
                k
            }
            None => b"l/".to_vec(),
        };
        let mut out = Vec::new();
        for kv in self.tree.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(b"l/") || out.len() >= limit {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|e| {
                crate::error::ReplayError::Corrupt {
                    key: String::from_utf8_lossy(&k).to_string(),
                    reason: e.to_string(),
                }
            })?);
        }
        Ok(out)
    }

    /// The latest state of aggregate `key`.
    pub fn one(&self, key: &str) -> Result<Option<Latest>> {
        Ok(match self.tree.get(format!("l/{key}"))? {
            Some(v) => serde_json::from_slice(&v).ok(),
            None => None,
        })
    }

    /// How many aggregates it knows.
    pub fn aggregates(&self) -> usize {
        self.tree.scan_prefix(b"l/").count()
    }
}

const OPEN_COLUMNS: &[Column] = &[
    Column::open(
        "month",
        T::YearMonth,
        "Tháng",
        "Month",
        "Month of the event in the subsystem (local time, UTC+7).",
    ),
    Column::open(
        "type",
        T::String,
        "Loại sự kiện",
        "Event type",
        "The CloudEvents type (vn.egov.<subsystem>.<entity>.<action>).",
    ),
    Column::open(
        "events",
        T::Integer,
        "Số sự kiện",
        "Events",
        "Events of the type in the month.",
    ),
];

/// The same, the counts withheld when small (a subsystem whose data is not public).
const WITHHELD_COLUMNS: &[Column] = &[OPEN_COLUMNS[0], OPEN_COLUMNS[1], OPEN_COLUMNS[2].count()];

fn rows(tree: &sled::Tree) -> Result<Vec<Vec<Value>>> {
    let mut rows: Vec<Vec<Value>> = RegisteredView { tree }
        .counts()?
        .into_iter()
        .map(|(ty, month, n)| vec![Value::from(month), Value::from(ty), Value::from(n)])
        .collect();
    rows.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    Ok(rows)
}

/// The dataset of registered subsystem `name`: `registered-<name>-monthly` (apart from every
/// compiled read model's).
pub fn dataset_id(name: &str) -> String {
    format!("registered-{}-monthly", name.replace('_', "-"))
}

/// The dataset of each registered subsystem the process knows (`<name>-monthly`). Interned
/// once per subsystem, like the registrations themselves.
pub fn dataset_specs() -> Vec<DatasetSpec> {
    use std::sync::Mutex;
    static MADE: Mutex<Vec<DatasetSpec>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().expect("datasets lock");
    for r in lienthong_bus::registry::live::registrations() {
        let Some(sub) = lienthong_bus::registry::subsystem(&r.spec.name) else {
            continue;
        };
        if made.iter().any(|d| d.projection == sub.name) {
            continue;
        }
        let public = r.spec.classification == lienthong_bus::Classification::Public;
        made.push(DatasetSpec {
            id: intern(&dataset_id(sub.name)),
            projection: sub.name,
            stream: sub.stream,
            title_vi: intern(&format!("{} — số sự kiện theo loại và tháng", sub.title_vi)),
            title_en: intern(&format!("{} — events by type and month", sub.title)),
            description_vi: intern(&format!(
                "Số sự kiện mỗi loại của phân hệ {} theo tháng, từ luồng {} của trục liên thông.",
                sub.title_vi, sub.stream
            )),
            description_en: intern(&format!(
                "Events of each type of the registered subsystem {} by month, from the bus's stream {}.",
                sub.title, sub.stream
            )),
            keywords: Box::leak(vec![sub.name, sub.stream].into_boxed_slice()),
            theme: "GOVE",
            columns: if public { OPEN_COLUMNS } else { WITHHELD_COLUMNS },
            key: &["month", "type"],
            rows,
            panel: "registered",
        });
    }
    made.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    static SUB: lienthong_bus::registry::Subsystem = lienthong_bus::registry::Subsystem {
        name: "gauges",
        stream: "GAUGES",
        title: "Gauges",
        title_vi: "Trạm đo",
        formats: "",
        default_source: "urn:x",
        audited: true,
        grantable: true,
        projections: &["registered"],
        kpi_section: None,
        docs: "",
    };

    fn ev(seq: u64, key: &str, hour: u32, level: f64) -> ProjectedEvent {
        ProjectedEvent {
            ty: "vn.egov.gauges.level.measured".into(),
            id: format!("e{seq}"),
            source: "urn:x".into(),
            key: Some(key.into()),
            time: Some(
                chrono::Utc
                    .with_ymd_and_hms(2026, 10, 31, hour, 0, 0)
                    .unwrap(),
            ),
            data: crate::projection::data_of(&json!({"gauge": key, "level_cm": level})),
            version: 1,
            sequence: seq,
        }
    }

    #[test]
    fn counts_by_type_and_local_month_and_keeps_the_latest_state_by_the_subsystems_time() {
        let store = crate::store::ReadStore::temporary().unwrap();
        let tree = store.current("gauges").unwrap();
        let p = RegisteredProjection { subsystem: &SUB };
        let mut c = Changes::new(&tree);
        // 18:00 UTC on 31 October is 1 November in UTC+7.
        for e in [
            ev(1, "A", 10, 1.0),
            ev(2, "A", 18, 2.0),
            ev(3, "A", 12, 3.0),
            ev(4, "B", 1, 4.0),
        ] {
            p.apply(&mut c, &e).unwrap();
        }
        c.commit(4).unwrap();
        let v = RegisteredView { tree: &tree };
        let counts = v.counts().unwrap();
        assert_eq!(
            counts,
            [
                (
                    "vn.egov.gauges.level.measured".to_string(),
                    "2026-10".to_string(),
                    3
                ),
                (
                    "vn.egov.gauges.level.measured".to_string(),
                    "2026-11".to_string(),
                    1
                )
            ]
        );
        // A reading of an earlier time arriving later does not replace the latest.
        assert_eq!(v.one("A").unwrap().unwrap().data["level_cm"], 2.0);
        assert_eq!(v.aggregates(), 2);
        let page = v.latest(Some("A"), 10).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].key, "B");
    }
}
