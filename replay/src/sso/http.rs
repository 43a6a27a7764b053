//! `GET /api/v1/sso/activity`: registered users, active users per day/month/year, sign-ins
//! per client application, failures and lockouts — pseudonymous counts only.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{SignOnProjection, SignOnView, NAME};
use crate::api::{AppState, Unavailable};
use crate::http::openapi::{ok, Op, JSON};
use crate::read_models::{KpiSection, ReadModel};

/// The sign-on read model: its projection, endpoint and KPI section.
pub fn read_model() -> ReadModel {
    ReadModel {
        projection: std::sync::Arc::new(SignOnProjection),
        routes: |r: Router<AppState>| r.route("/api/v1/sso/activity", get(activity)),
        kpi: Some(KpiSection {
            name: "sso",
            years: |tree| {
                Ok(SignOnView { tree }
                    .activity()?
                    .yearly_active
                    .into_keys()
                    .collect())
            },
            figures: kpi,
        }),
        datasets: vec![super::dataset::SPEC],
        api: API,
    }
}

const API: &[Op] = &[Op {
    method: "get",
    path: "/api/v1/sso/activity",
    tag: "sso",
    summary: "Registered users, sign-ins per application, failures, lockouts, active users",
    params: &[],
    answers: &[ok(JSON, "Activity")],
}];

/// Registered users (now), active users in the year and in its latest month, sign-ins and
/// failures in the year (all time without one), lockouts since the start.
fn kpi(tree: &sled::Tree, year: Option<&str>) -> crate::Result<serde_json::Value> {
    let activity = SignOnView { tree }.activity()?;
    let latest_month = activity
        .monthly_active
        .iter()
        .rfind(|(m, _)| year.is_none_or(|y| m.starts_with(y)));
    // Sign-ins and failures of the year (every year's without one).
    let (mut logins, mut failures) = (activity.logins, activity.failures);
    let mut by_client = activity.logins_by_client.clone();
    if let Some(y) = year {
        (logins, failures) = (0, 0);
        by_client.clear();
        for m in (SignOnView { tree }).monthly()? {
            if m.month.starts_with(y) {
                logins += m.logins;
                failures += m.failures;
                *by_client.entry(m.client).or_default() += m.logins;
            }
        }
    }
    Ok(json!({
        "registered_users": activity.registered_users,
        "active_users": year.and_then(|y| activity.yearly_active.get(y)).copied().unwrap_or(0),
        "monthly_active_users": latest_month.map(|(m, n)| json!({"month": m, "users": n})),
        "logins": logins,
        "login_failures": failures,
        // Counted since the start (lockouts are not kept per month).
        "lockouts": activity.lockouts,
        "logins_by_client": by_client,
    }))
}

async fn activity(State(s): State<AppState>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let a = (SignOnView { tree: &tree }).activity()?;
    Ok(Json(a).into_response())
}
