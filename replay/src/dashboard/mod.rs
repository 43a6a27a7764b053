//! The operations centre's dashboard: its panels computed from the read models for one year
//! and, optionally, one ward ([`panels`]); the live feed ([`live`]); history integrity
//! ([`integrity`]); the page and its endpoints ([`http`]).
//!
//! Every figure comes from a read model; names come from the read models' events or the
//! city's reference data ([`crate::reference`]). The page labels codes (statuses, event
//! types) in Vietnamese or English itself; it never shows a slug or a code.

pub mod http;
pub mod integrity;
pub mod live;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::datasets::DatasetSpec;
use crate::error::Result;
use crate::field_reports::{FieldReportsView, ReportFilter, ReportView};
use crate::meetings::MeetingsView;
use crate::reference::{self, Ward};

/// Reports listed in the overdue and oldest-open panels.
const LISTED: usize = 15;

/// One ward on the map, for the year shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WardRow {
    pub ward: String,
    pub name: String,
    pub population: u64,
    pub row: u32,
    pub col: u32,
    pub received: u64,
    pub resolved: u64,
    /// Still open now.
    pub open: u64,
    /// Open and past their deadline now.
    pub overdue: u64,
    pub per_1000_residents: f64,
    /// Online meetings the ward took part in.
    pub meetings: u64,
}

/// One month of the trends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthRow {
    pub month: String,
    pub reports_received: u64,
    /// Resolved that month (by the month of resolution).
    pub reports_resolved: u64,
    pub documents_sent: u64,
    pub documents_sent_electronic: u64,
    /// Electronic share of the documents sent (secret documents are never counted).
    pub document_ratio: Option<f64>,
    pub sign_ins: u64,
    pub meetings: u64,
}

/// A report awaiting resolution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenReport {
    pub report_id: String,
    pub ward: String,
    pub ward_name: String,
    pub category_name: Option<String>,
    pub status: String,
    pub requested_at: Option<String>,
    pub expected_at: Option<String>,
    /// Days since it was submitted.
    pub age_days: i64,
    /// Past its deadline now.
    pub overdue: bool,
    /// Whole days past its deadline (0 in the first day, and when not past it).
    pub overdue_days: i64,
    /// Its history (`/api/v1/field-reports/{id}/history`).
    pub href: String,
}

/// Reports by category.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryRow {
    pub category_name: String,
    pub received: u64,
    pub resolved: u64,
    pub resolved_on_time: u64,
}

/// Reports by status (the page names the status).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    pub status: String,
    pub reports: u64,
}

/// Sign-ins by application.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplicationRow {
    pub application: String,
    pub name_vi: String,
    pub name_en: String,
    pub logins: u64,
}

/// Documents sent by agency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgencyRow {
    pub agency: String,
    pub agency_name: String,
    pub sent: u64,
    pub sent_electronic: u64,
    pub electronic_ratio: Option<f64>,
}

/// Every panel's rows for one year (and ward).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Panels {
    pub year: Option<String>,
    /// The years any read model has figures for (the period selector).
    pub years: Vec<String>,
    /// The ward the panels are filtered to (field reports, meetings).
    pub ward: Option<Ward>,
    /// When "now" was for ages and deadlines.
    pub now: DateTime<Utc>,
    /// Reports of the year (and ward) open now, and of those past their deadline — every
    /// ward's, also reports that could not be placed in one.
    pub open: u64,
    pub overdue_open: u64,
    pub wards: Vec<WardRow>,
    pub trends: Vec<MonthRow>,
    pub overdue: Vec<OpenReport>,
    pub oldest_open: Vec<OpenReport>,
    pub categories: Vec<CategoryRow>,
    pub statuses: Vec<StatusRow>,
    pub applications: Vec<ApplicationRow>,
    pub agencies: Vec<AgencyRow>,
}

/// The trees the panels read, by projection name.
pub struct Trees {
    pub field_reports: sled::Tree,
    pub documents: sled::Tree,
    pub sso: sled::Tree,
    pub meetings: sled::Tree,
}

fn local() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("UTC+7")
}

fn month_of(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&local()).format("%Y-%m").to_string()
}

/// The panels for `year` (`None`: every year) and `ward`, as of `now`.
pub fn panels(
    trees: &Trees,
    years: Vec<String>,
    year: Option<String>,
    ward: Option<&Ward>,
    now: DateTime<Utc>,
) -> Result<Panels> {
    let in_year = |month: &str| year.as_deref().is_none_or(|y| month.starts_with(y));
    let in_ward = |slug: &str| ward.is_none_or(|w| w.slug == slug);
    let mut months: BTreeMap<String, MonthRow> = BTreeMap::new();
    if let Some(y) = &year {
        for m in 1..=12 {
            month_row(&mut months, &format!("{y}-{m:02}"));
        }
    }

    // Field reports.
    let mut wards: BTreeMap<&str, WardRow> = reference::wards()
        .iter()
        .map(|w| (w.slug.as_str(), ward_row(w)))
        .collect();
    let mut categories: BTreeMap<String, CategoryRow> = BTreeMap::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut open = Vec::new();
    let (mut open_count, mut overdue_count) = (0u64, 0u64);
    for r in (FieldReportsView {
        tree: &trees.field_reports,
    })
    .list(&ReportFilter::default())?
    {
        if let Some(done) = r.resolved_at.filter(|_| in_ward(&r.ward)) {
            let m = month_of(done);
            if in_year(&m) {
                month_row(&mut months, &m).reports_resolved += 1;
            }
        }
        let Some(at) = r.requested_at else { continue };
        let month = month_of(at);
        if !in_year(&month) {
            continue;
        }
        let overdue = r.is_open() && r.expected_at.is_some_and(|due| due < now);
        if let Some(w) = wards.get_mut(r.ward.as_str()) {
            w.received += 1;
            w.resolved += u64::from(!r.is_open());
            w.open += u64::from(r.is_open());
            w.overdue += u64::from(overdue);
        }
        if !in_ward(&r.ward) {
            continue;
        }
        month_row(&mut months, &month).reports_received += 1;
        *statuses.entry(r.status.clone()).or_default() += 1;
        let name = r
            .category_name
            .clone()
            .unwrap_or_else(|| "Chưa phân loại".into());
        let c = categories
            .entry(name.clone())
            .or_insert_with(|| CategoryRow {
                category_name: name,
                received: 0,
                resolved: 0,
                resolved_on_time: 0,
            });
        c.received += 1;
        c.resolved += u64::from(!r.is_open());
        if let (Some(done), Some(due)) = (r.resolved_at, r.expected_at) {
            c.resolved_on_time += u64::from(done <= due);
        }
        if r.is_open() {
            open_count += 1;
            overdue_count += u64::from(overdue);
            open.push(open_report(&r, now));
        }
    }
    for w in wards.values_mut() {
        w.per_1000_residents =
            (w.received as f64 * 1000.0 / w.population.max(1) as f64 * 100.0).round() / 100.0;
    }

    // Meetings.
    let meeting_year = year.as_deref().and_then(|y| y.parse::<i32>().ok());
    for m in (MeetingsView {
        tree: &trees.meetings,
    })
    .meetings(meeting_year)?
    {
        let Some(when) = m.when() else { continue };
        let taking_part = m.wards();
        for w in &taking_part {
            if let Some(row) = wards.get_mut(*w) {
                row.meetings += 1;
            }
        }
        if ward.is_none_or(|w| taking_part.contains(w.slug.as_str())) {
            let month = format!("{:04}-{:02}", when.year(), when.month());
            if in_year(&month) {
                month_row(&mut months, &month).meetings += 1;
            }
        }
    }

    // Documents (the whole city: agencies are not wards).
    let mut agencies: BTreeMap<String, AgencyRow> = BTreeMap::new();
    for row in table(&crate::documents::dataset::SPEC, &trees.documents)? {
        let month = text(&row, "month");
        if !in_year(&month) {
            continue;
        }
        let (sent, electronic) = (count(&row, "sent"), count(&row, "sent_electronic"));
        let m = month_row(&mut months, &month);
        m.documents_sent += sent;
        m.documents_sent_electronic += electronic;
        let a = agencies
            .entry(text(&row, "agency"))
            .or_insert_with(|| AgencyRow {
                agency: text(&row, "agency"),
                agency_name: text(&row, "agency_name"),
                sent: 0,
                sent_electronic: 0,
                electronic_ratio: None,
            });
        a.sent += sent;
        a.sent_electronic += electronic;
    }
    for a in agencies.values_mut() {
        a.electronic_ratio = ratio(a.sent_electronic, a.sent);
    }
    for m in months.values_mut() {
        m.document_ratio = ratio(m.documents_sent_electronic, m.documents_sent);
    }

    // Sign-on (the whole city).
    let mut applications: BTreeMap<String, u64> = BTreeMap::new();
    for row in table(&crate::sso::dataset::SPEC, &trees.sso)? {
        let month = text(&row, "month");
        if !in_year(&month) {
            continue;
        }
        let logins = count(&row, "logins");
        month_row(&mut months, &month).sign_ins += logins;
        *applications.entry(text(&row, "application")).or_default() += logins;
    }

    let mut overdue: Vec<OpenReport> = open.iter().filter(|r| r.overdue).cloned().collect();
    overdue.sort_by(|a, b| {
        b.overdue_days
            .cmp(&a.overdue_days)
            .then(a.report_id.cmp(&b.report_id))
    });
    overdue.truncate(LISTED);
    open.sort_by(|a, b| {
        b.age_days
            .cmp(&a.age_days)
            .then(a.report_id.cmp(&b.report_id))
    });
    open.truncate(LISTED);
    let mut categories: Vec<CategoryRow> = categories.into_values().collect();
    categories.sort_by_key(|c| std::cmp::Reverse(c.received));
    let mut agencies: Vec<AgencyRow> = agencies.into_values().collect();
    agencies.sort_by_key(|a| std::cmp::Reverse(a.sent));
    let mut applications: Vec<ApplicationRow> = applications
        .into_iter()
        .map(|(id, logins)| {
            let known = reference::application(&id);
            ApplicationRow {
                name_vi: known.map_or("Ứng dụng khác".into(), |a| a.name_vi.clone()),
                name_en: known.map_or("Other application".into(), |a| a.name_en.clone()),
                application: id,
                logins,
            }
        })
        .collect();
    applications.sort_by_key(|a| std::cmp::Reverse(a.logins));
    Ok(Panels {
        year,
        years,
        ward: ward.cloned(),
        now,
        open: open_count,
        overdue_open: overdue_count,
        wards: wards.into_values().collect(),
        trends: months.into_values().collect(),
        overdue,
        oldest_open: open,
        categories,
        statuses: statuses
            .into_iter()
            .map(|(status, reports)| StatusRow { status, reports })
            .collect(),
        applications,
        agencies,
    })
}

fn ward_row(w: &Ward) -> WardRow {
    WardRow {
        ward: w.slug.clone(),
        name: w.name.clone(),
        population: w.population,
        row: w.map.row,
        col: w.map.col,
        received: 0,
        resolved: 0,
        open: 0,
        overdue: 0,
        per_1000_residents: 0.0,
        meetings: 0,
    }
}

fn month_row<'a>(months: &'a mut BTreeMap<String, MonthRow>, month: &str) -> &'a mut MonthRow {
    months.entry(month.to_string()).or_insert_with(|| MonthRow {
        month: month.to_string(),
        reports_received: 0,
        reports_resolved: 0,
        documents_sent: 0,
        documents_sent_electronic: 0,
        document_ratio: None,
        sign_ins: 0,
        meetings: 0,
    })
}

fn open_report(r: &ReportView, now: DateTime<Utc>) -> OpenReport {
    let days = |from: DateTime<FixedOffset>| (now - from.with_timezone(&Utc)).num_days().max(0);
    OpenReport {
        report_id: r.report_id.clone(),
        ward: r.ward.clone(),
        ward_name: r
            .ward_name
            .clone()
            .or_else(|| reference::ward(&r.ward).map(|w| w.name.clone()))
            .unwrap_or_else(|| "Chưa xác định".into()),
        category_name: r.category_name.clone(),
        status: r.status.clone(),
        requested_at: r.requested_at.map(|t| t.to_rfc3339()),
        expected_at: r.expected_at.map(|t| t.to_rfc3339()),
        age_days: r.requested_at.map_or(0, days),
        overdue: r.expected_at.is_some_and(|due| due < now),
        overdue_days: r.expected_at.filter(|d| *d < now).map_or(0, days),
        href: format!(
            "/api/v1/field-reports/{}/history",
            path_segment(&r.report_id)
        ),
    }
}

/// A dataset's rows (all of them: the operations centre sees small counts too), each as
/// column name → value.
fn table(spec: &DatasetSpec, tree: &sled::Tree) -> Result<Vec<BTreeMap<&'static str, Value>>> {
    Ok((spec.rows)(tree)?
        .into_iter()
        .map(|row| {
            spec.columns
                .iter()
                .map(|c| c.name)
                .zip(row)
                .collect::<BTreeMap<_, _>>()
        })
        .collect())
}

fn text(row: &BTreeMap<&str, Value>, column: &str) -> String {
    row.get(column)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn count(row: &BTreeMap<&str, Value>, column: &str) -> u64 {
    row.get(column).and_then(Value::as_u64).unwrap_or(0)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

/// `text` percent-encoded as one path segment (RFC 3986: unreserved characters stay).
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_ids_are_encoded_as_one_path_segment() {
        assert_eq!(path_segment("PT-2023-000001"), "PT-2023-000001");
        assert_eq!(path_segment("a b/c+d"), "a%20b%2Fc%2Bd");
        assert_eq!(path_segment("Phú"), "Ph%C3%BA");
    }
}
