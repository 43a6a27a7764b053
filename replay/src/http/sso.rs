//! `GET /api/v1/sso/activity`: registered users, active users per day/month/year, sign-ins
//! per client application, failures and lockouts — pseudonymous counts only.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{AppState, Unavailable};
use crate::sso::{SignOnView, NAME};

pub async fn activity(State(s): State<AppState>) -> Result<Response, Unavailable> {
    let tree = s.tree(NAME)?;
    let a = (SignOnView { tree: &tree }).activity()?;
    Ok(Json(a).into_response())
}
