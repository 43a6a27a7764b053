//! A CKAN stand-in: `GET /api/3/action/package_search` with `fq=metadata_modified:[A TO B]`,
//! `sort=metadata_modified asc|desc`, `rows`, `start`, `include_private`, `include_deleted`,
//! over the fixture catalogue or any packages given.

use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::ckan::ckan_time;

/// The fixture catalogue's packages.
pub fn fixture_packages() -> Vec<Value> {
    let v: Value =
        serde_json::from_str(include_str!("../../fixtures/open_data/package_search.json"))
            .expect("fixture");
    v["result"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[derive(Clone)]
pub struct CkanSimulator {
    packages: Arc<RwLock<Vec<Value>>>,
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    fq: Option<String>,
    sort: Option<String>,
    rows: Option<usize>,
    start: Option<usize>,
    include_private: Option<bool>,
    include_deleted: Option<bool>,
}

impl CkanSimulator {
    pub fn new(packages: Vec<Value>) -> Self {
        Self {
            packages: Arc::new(RwLock::new(packages)),
        }
    }

    /// Adds a package, or replaces the one with the same id (a new revision).
    pub fn upsert(&self, package: Value) {
        let mut all = self.packages.write().expect("lock");
        all.retain(|p| p["id"] != package["id"]);
        all.push(package);
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/3/action/package_search", get(search))
            .with_state(self.clone())
    }

    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `metadata_modified:[A TO B]` → the bounds (`*` and `NOW` open).
fn range(fq: &str) -> Option<(Option<String>, Option<String>)> {
    let inner = fq
        .trim()
        .strip_prefix("metadata_modified:[")?
        .strip_suffix(']')?;
    let (a, b) = inner.split_once(" TO ")?;
    let bound = |s: &str| (!matches!(s.trim(), "*" | "NOW")).then(|| s.trim().to_string());
    Some((bound(a), bound(b)))
}

async fn search(State(s): State<CkanSimulator>, Query(q): Query<SearchQuery>) -> Response {
    let (from, to) = match q.fq.as_deref().map(range) {
        None => (None, None),
        Some(Some(r)) => r,
        Some(None) => {
            return Json(json!({"success": false, "error": {"__type": "Search Query Error", "message": "unsupported fq"}})).into_response()
        }
    };
    let from = from.as_deref().and_then(ckan_time);
    let to = to.as_deref().and_then(ckan_time);
    let mut hits: Vec<Value> = s
        .packages
        .read()
        .expect("lock")
        .iter()
        .filter(|p| q.include_private.unwrap_or(false) || !p["private"].as_bool().unwrap_or(false))
        .filter(|p| q.include_deleted.unwrap_or(false) || p["state"].as_str() == Some("active"))
        .filter(|p| {
            let t = p["metadata_modified"].as_str().and_then(ckan_time);
            from.is_none_or(|f| t.is_some_and(|t| t >= f))
                && to.is_none_or(|e| t.is_some_and(|t| t <= e))
        })
        .cloned()
        .collect();
    hits.sort_by_key(|p| p["metadata_modified"].as_str().and_then(ckan_time));
    if q.sort.as_deref().is_some_and(|s| s.ends_with("desc")) {
        hits.reverse();
    }
    let count = hits.len();
    let rows = q.rows.unwrap_or(10).min(1000);
    let results: Vec<Value> = hits
        .into_iter()
        .skip(q.start.unwrap_or(0))
        .take(rows)
        .collect();
    Json(json!({
        "help": "package_search",
        "success": true,
        "result": {"count": count, "sort": q.sort.unwrap_or_else(|| "score desc, metadata_modified desc".into()), "facets": {}, "results": results, "search_facets": {}}
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range("metadata_modified:[* TO NOW]"), Some((None, None)));
        assert_eq!(
            range("metadata_modified:[2023-11-02T10:15:30.123456Z TO NOW]"),
            Some((Some("2023-11-02T10:15:30.123456Z".into()), None))
        );
        assert_eq!(range("title:x"), None);
    }
}
