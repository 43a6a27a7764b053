//! Online meetings as a dataset: by ward and month.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{MeetingsView, NAME};
use crate::datasets::{Column, ColumnType as T, DatasetSpec};

const COLUMNS: &[Column] = &[
    Column::open(
        "month",
        T::YearMonth,
        "Tháng",
        "Month",
        "Month of the meeting (local time, UTC+7).",
    ),
    Column::open(
        "ward",
        T::String,
        "Mã phường, xã",
        "Ward code",
        "The ward or commune whose People's Committee took part.",
    ),
    Column::open(
        "meetings",
        T::Integer,
        "Số cuộc họp",
        "Meetings",
        "Online meetings the ward took part in.",
    ),
    Column::open(
        "participations",
        T::Integer,
        "Lượt tham dự",
        "Participations",
        "Participants from the ward, counted once per meeting.",
    )
    .count(),
    Column::open(
        "connected_hours",
        T::Number,
        "Giờ kết nối",
        "Hours connected",
        "Total time the ward's participants were connected, in hours.",
    )
    .unit("hour")
    .derived_from("participations"),
];

pub const SPEC: DatasetSpec = DatasetSpec {
    id: "meetings-monthly",
    projection: NAME,
    stream: "MEETINGS",
    title_vi: "Họp trực tuyến với các phường, xã theo tháng",
    title_en: "Online meetings with the wards and communes by month",
    description_vi: "Số cuộc họp trực tuyến mỗi phường, xã tham dự, số lượt tham dự và thời gian kết nối, theo tháng.",
    description_en: "Online meetings each ward or commune took part in, participations and time connected, by month.",
    keywords: &["họp trực tuyến", "online meetings", "phường xã", "wards", "chính quyền số"],
    theme: "GOVE",
    columns: COLUMNS,
    key: &["month", "ward"],
    rows,
    panel: "meetings",
};

#[derive(Default)]
struct Cell {
    meetings: BTreeSet<String>,
    participations: u64,
    minutes: f64,
}

fn rows(tree: &sled::Tree) -> crate::Result<Vec<Vec<Value>>> {
    let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
    for m in (MeetingsView { tree }).meetings(None)? {
        let Some(when) = m.when() else { continue };
        let month = when.format("%Y-%m").to_string();
        for p in m.participants.values() {
            let Some(ward) = p.ward.clone() else { continue };
            let c = cells.entry((month.clone(), ward)).or_default();
            c.meetings.insert(m.meeting_id.clone());
            c.participations += 1;
            if let (Some(a), Some(b)) = (p.joined_at, p.left_at) {
                c.minutes += (b - a).num_seconds().max(0) as f64 / 60.0;
            }
        }
    }
    Ok(cells
        .into_iter()
        .map(|((month, ward), c)| {
            vec![
                json!(month),
                json!(ward),
                json!(c.meetings.len()),
                json!(c.participations),
                json!((c.minutes / 60.0 * 100.0).round() / 100.0),
            ]
        })
        .collect())
}
