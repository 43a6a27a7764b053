//! `GET /api/v1/sso/activity`: registered users, active users per day/month/year, sign-ins
//! per client application, failures and lockouts — pseudonymous counts only.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{internal, AppState};
use crate::sso::{SignOnView, NAME};

pub async fn activity(State(s): State<AppState>) -> Response {
    let tree = match s.tree(NAME) {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    match (SignOnView { tree: &tree }).activity() {
        Ok(a) => Json(a).into_response(),
        Err(e) => internal(e),
    }
}
