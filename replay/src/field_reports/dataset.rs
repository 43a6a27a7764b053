//! Field reports as a dataset: by month of submission, ward and category.

use std::collections::BTreeMap;

use chrono::FixedOffset;
use serde_json::{json, Value};

use super::{FieldReportsView, ReportFilter, NAME};
use crate::datasets::{Column, ColumnType as T, DatasetSpec};

const COLUMNS: &[Column] = &[
    Column::open("month", T::YearMonth, "Tháng", "Month", "Month of submission (local time, UTC+7)."),
    Column::open("ward", T::String, "Mã phường, xã", "Ward code", "The ward or commune (slug); `unknown` when the report could not be placed."),
    Column::open("ward_name", T::String, "Phường, xã", "Ward", "The ward or commune's name."),
    Column::open("category", T::String, "Mã lĩnh vực", "Category code", "The Open311 service code of the report."),
    Column::open("category_name", T::String, "Lĩnh vực", "Category", "The category's name."),
    Column::open("received", T::Integer, "Số phản ánh nhận", "Reports received", "Reports submitted that month.").count(),
    Column::open("resolved", T::Integer, "Số đã giải quyết", "Reports resolved", "Of those, reports resolved since (fixed, closed, duplicate, unable to fix, not responsible).").count(),
    Column::open("resolved_on_time", T::Integer, "Giải quyết đúng hạn", "Resolved on time", "Of those resolved, resolved no later than the deadline the system set.").count(),
    Column::open("median_resolution_hours", T::Number, "Thời gian giải quyết (trung vị, giờ)", "Median resolution time (hours)", "Median time from submission to resolution of the resolved reports, in hours.")
        .unit("hour")
        .derived_from("resolved"),
];

pub const SPEC: DatasetSpec = DatasetSpec {
    id: "field-reports-monthly",
    projection: NAME,
    stream: "FIELD_REPORTS",
    title_vi: "Phản ánh hiện trường theo phường, lĩnh vực và tháng",
    title_en: "Citizen field reports by ward, category and month",
    description_vi: "Số phản ánh hiện trường người dân gửi, số đã giải quyết, số giải quyết đúng hạn và thời gian giải quyết trung vị, theo phường/xã, lĩnh vực và tháng gửi.",
    description_en: "Citizens' field reports received, resolved, resolved on time and the median resolution time, by ward or commune, category and month of submission.",
    keywords: &["phản ánh hiện trường", "field reports", "Open311", "đô thị", "urban services"],
    theme: "GOVE",
    columns: COLUMNS,
    key: &["month", "ward", "category"],
    rows,
    panel: "field-reports",
};

#[derive(Default)]
struct Cell {
    ward_name: Option<String>,
    category_name: Option<String>,
    received: u64,
    on_time: u64,
    hours: Vec<f64>,
}

fn rows(tree: &sled::Tree) -> crate::Result<Vec<Vec<Value>>> {
    let local = FixedOffset::east_opt(7 * 3600).expect("UTC+7");
    let mut cells: BTreeMap<(String, String, String), Cell> = BTreeMap::new();
    for r in (FieldReportsView { tree }).list(&ReportFilter::default())? {
        let Some(at) = r.requested_at else { continue };
        let month = at.with_timezone(&local).format("%Y-%m").to_string();
        let category = r.category.clone().unwrap_or_else(|| "unknown".into());
        let c = cells.entry((month, r.ward.clone(), category)).or_default();
        c.received += 1;
        c.ward_name = c.ward_name.take().or(r.ward_name.clone());
        c.category_name = c.category_name.take().or(r.category_name.clone());
        if let Some(h) = r.resolution_hours {
            c.hours.push(h);
            if let (Some(done), Some(due)) = (r.resolved_at, r.expected_at) {
                c.on_time += u64::from(done <= due);
            }
        }
    }
    Ok(cells
        .into_iter()
        .map(|((month, ward, category), mut c)| {
            c.hours.sort_by(f64::total_cmp);
            let median = median(&c.hours);
            vec![
                json!(month),
                json!(ward),
                json!(c.ward_name),
                json!(category),
                json!(c.category_name),
                json!(c.received),
                json!(c.hours.len()),
                json!(c.on_time),
                json!(median),
            ]
        })
        .collect())
}

/// The median of sorted values, to two decimals (`None` when empty).
pub fn median(sorted: &[f64]) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let m = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some((m * 100.0).round() / 100.0)
}
