//! `GET /api/v1/kpi?year=YYYY`: the operations centre's summary across all four subsystems,
//! computed from the read models (never typed in). Without `year`, the latest year with
//! registered documents (or, without documents, with sign-ins).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Unavailable};
use crate::documents::{DocumentsView, ExchangeFilter};
use crate::field_reports::FieldReportsView;
use crate::open_data::CatalogueView;
use crate::sso::SignOnView;
use crate::store::checkpoint;

#[derive(Debug, Deserialize)]
pub struct Q {
    year: Option<String>,
}

pub async fn kpi(State(s): State<AppState>, Query(q): Query<Q>) -> Result<Response, Unavailable> {
    let docs_tree = s.store.current(crate::documents::NAME)?;
    let sso_tree = s.store.current(crate::sso::NAME)?;
    let fr_tree = s.store.current(crate::field_reports::NAME)?;
    let od_tree = s.store.current(crate::open_data::NAME)?;

    let docs = DocumentsView { tree: &docs_tree };
    let activity = SignOnView { tree: &sso_tree }.activity()?;
    let all_rows = docs.rows(&ExchangeFilter::default())?;
    let year = q
        .year
        .clone()
        .or_else(|| all_rows.iter().map(|r| r.month[..4].to_string()).max())
        .or_else(|| activity.yearly_active.keys().next_back().cloned());
    let rows = docs.rows(&ExchangeFilter {
        year: year.clone(),
        ..Default::default()
    })?;
    let d = DocumentsView::totals(&rows);
    let latest_month = activity
        .monthly_active
        .iter()
        .rfind(|(m, _)| year.as_ref().is_none_or(|y| m.starts_with(y.as_str())));
    let fr = FieldReportsView { tree: &fr_tree }.stats()?;
    let datasets = CatalogueView { tree: &od_tree }.datasets()?;
    let active: Vec<_> = datasets.iter().filter(|x| x.status == "active").collect();
    Ok(Json(json!({
            "year": year,
            "documents": {
                "sent": d.sent,
                "sent_electronic": d.sent_electronic,
                "sent_paper": d.sent_paper,
                "electronic_ratio": d.electronic_ratio,
                "received": d.received,
                "edxml_sent": d.edxml_sent,
                "agencies": rows.iter().map(|r| r.organ_id.as_str()).collect::<std::collections::BTreeSet<_>>().len(),
                "note": "secret documents are never on the bus and never counted",
            },
            "sso": {
                "registered_users": activity.registered_users,
                "active_users": year.as_ref().and_then(|y| activity.yearly_active.get(y)).copied().unwrap_or(0),
                "monthly_active_users": latest_month.map(|(m, n)| json!({"month": m, "users": n})),
                "logins": activity.logins,
                "login_failures": activity.failures,
                "lockouts": activity.lockouts,
                "logins_by_client": activity.logins_by_client,
            },
            "field_reports": {
                "total": fr.total,
                "resolved": fr.resolution.resolved,
                "open": fr.resolution.open,
                "median_resolution_hours": fr.resolution.median_hours,
                "on_time_ratio": fr.resolution.on_time_ratio,
                "by_status": fr.by_status,
                "wards_reporting": fr.by_ward.keys().filter(|w| *w != "unknown").count(),
            },
            "open_data": {
                "datasets": active.len(),
                "withdrawn": datasets.len() - active.len(),
                "resources": active.iter().map(|x| x.resources.len()).sum::<usize>(),
            },
            "stream_sequences": {
                "DOCUMENTS": checkpoint(&docs_tree)?,
                "SSO": checkpoint(&sso_tree)?,
                "FIELD_REPORTS": checkpoint(&fr_tree)?,
                "OPEN_DATA": checkpoint(&od_tree)?,
            },
        })).into_response())
}
