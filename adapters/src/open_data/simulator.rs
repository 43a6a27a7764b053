//! A CKAN stand-in: `GET /api/3/action/package_search` with `fq=metadata_modified:[A TO B]`,
//! `sort=metadata_modified asc|desc`, `rows`, `start`, `include_private`, `include_deleted`,
//! over the fixture catalogue or any packages given; and, for `lienthong datasets publish`,
//! `package_show`, `package_create`, `package_patch`, `resource_create`, `resource_patch`
//! behind an API token (`Authorization: <token>`), answering as CKAN 2.10 does (success
//! envelope, `Not Found Error`, `Validation Error`, `Authorization Error`).

use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    /// The API token write actions need (none: writes refused).
    token: Option<String>,
    /// Calls of each write action, for tests of idempotence.
    writes: Arc<RwLock<std::collections::BTreeMap<String, u64>>>,
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
            token: None,
            writes: Arc::default(),
        }
    }

    /// Accepts write actions from callers presenting `token`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How many times each write action changed something.
    pub fn writes(&self) -> std::collections::BTreeMap<String, u64> {
        self.writes.read().expect("lock").clone()
    }

    /// Every package now.
    pub fn packages(&self) -> Vec<Value> {
        self.packages.read().expect("lock").clone()
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
            .route("/api/3/action/package_show", get(package_show))
            .route("/api/3/action/package_create", post(package_create))
            .route("/api/3/action/package_patch", post(package_patch))
            .route("/api/3/action/resource_create", post(resource_create))
            .route("/api/3/action/resource_patch", post(resource_patch))
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

fn ok(action: &str, result: Value) -> Response {
    Json(json!({"help": action, "success": true, "result": result})).into_response()
}

fn error(status: StatusCode, action: &str, error: Value) -> Response {
    (
        status,
        Json(json!({"help": action, "success": false, "error": error})),
    )
        .into_response()
}

fn not_found(action: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        action,
        json!({"__type": "Not Found Error", "message": "Not found"}),
    )
}

fn invalid(action: &str, field: &str, message: &str) -> Response {
    error(
        StatusCode::CONFLICT,
        action,
        json!({"__type": "Validation Error", field: [message]}),
    )
}

/// Write actions need the token, as CKAN's `Authorization` header: the refusal, if any.
fn refused(s: &CkanSimulator, headers: &HeaderMap, action: &str) -> Option<Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
    match (&s.token, given) {
        (Some(t), Some(g))
            if lienthong_bus::credentials::constant_time_eq(t.as_bytes(), g.as_bytes()) =>
        {
            None
        }
        _ => Some(error(
            StatusCode::FORBIDDEN,
            action,
            json!({"__type": "Authorization Error", "message": "Access denied: a valid API token is required"}),
        )),
    }
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

fn counted(s: &CkanSimulator, action: &str) {
    *s.writes
        .write()
        .expect("lock")
        .entry(action.to_string())
        .or_default() += 1;
}

/// The organizations packages belong to (a package's owner must be one of them).
fn organization(s: &CkanSimulator, wanted: &str) -> Option<Value> {
    s.packages
        .read()
        .expect("lock")
        .iter()
        .filter_map(|p| p.get("organization").filter(|o| o.is_object()).cloned())
        .find(|o| o["id"] == wanted || o["name"] == wanted)
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    id: String,
}

async fn package_show(State(s): State<CkanSimulator>, Query(q): Query<ShowQuery>) -> Response {
    let all = s.packages.read().expect("lock");
    match all
        .iter()
        .find(|p| p["id"] == q.id.as_str() || p["name"] == q.id.as_str())
    {
        Some(p) => ok("package_show", p.clone()),
        None => not_found("package_show"),
    }
}

fn valid_name(name: &str) -> bool {
    (2..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn tags(v: &Value) -> Value {
    json!(v
        .as_array()
        .map(|t| t
            .iter()
            .filter_map(|x| x.get("name").and_then(Value::as_str).or_else(|| x.as_str()))
            .map(|n| json!({"name": n, "display_name": n, "state": "active"}))
            .collect::<Vec<_>>())
        .unwrap_or_default())
}

async fn package_create(
    State(s): State<CkanSimulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    const A: &str = "package_create";
    if let Some(r) = refused(&s, &headers, A) {
        return r;
    }
    let Some(name) = body["name"].as_str().filter(|n| valid_name(n)) else {
        return invalid(A, "name", "Must be purely lowercase alphanumeric (ascii) characters and these symbols: -_, 2 to 100 long");
    };
    let Some(org) = body["owner_org"].as_str().and_then(|o| organization(&s, o)) else {
        return invalid(A, "owner_org", "Organization does not exist");
    };
    if s.packages
        .read()
        .expect("lock")
        .iter()
        .any(|p| p["name"] == name)
    {
        return invalid(A, "name", "That URL is already in use.");
    }
    let at = now();
    let id = format!("{:032x}", rand::random::<u128>());
    let mut p = body.clone();
    p["id"] = json!(id);
    p["type"] = json!("dataset");
    p["state"] = json!("active");
    p["private"] = json!(body["private"].as_bool().unwrap_or(false));
    p["owner_org"] = org["id"].clone();
    p["organization"] = org;
    p["tags"] = tags(&body["tags"]);
    p["metadata_created"] = json!(at);
    p["metadata_modified"] = json!(at);
    p["resources"] = json!(body["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut r| {
            r["id"] = json!(format!("{:032x}", rand::random::<u128>()));
            r["package_id"] = json!(id);
            r["state"] = json!("active");
            r
        })
        .collect::<Vec<_>>());
    s.packages.write().expect("lock").push(p.clone());
    counted(&s, A);
    ok(A, p)
}

async fn package_patch(
    State(s): State<CkanSimulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    const A: &str = "package_patch";
    if let Some(r) = refused(&s, &headers, A) {
        return r;
    }
    let Some(id) = body["id"].as_str() else {
        return invalid(A, "id", "Missing value");
    };
    let mut all = s.packages.write().expect("lock");
    let Some(p) = all.iter_mut().find(|p| p["id"] == id || p["name"] == id) else {
        return not_found(A);
    };
    for (k, v) in body.as_object().into_iter().flatten() {
        if matches!(
            k.as_str(),
            "id" | "resources" | "organization" | "owner_org"
        ) {
            continue;
        }
        p[k] = if k == "tags" { tags(v) } else { v.clone() };
    }
    p["metadata_modified"] = json!(now());
    let result = p.clone();
    drop(all);
    counted(&s, A);
    ok(A, result)
}

async fn resource_create(
    State(s): State<CkanSimulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    const A: &str = "resource_create";
    if let Some(r) = refused(&s, &headers, A) {
        return r;
    }
    let Some(package) = body["package_id"].as_str() else {
        return invalid(A, "package_id", "Missing value");
    };
    let mut all = s.packages.write().expect("lock");
    let Some(p) = all
        .iter_mut()
        .find(|p| p["id"] == package || p["name"] == package)
    else {
        return not_found(A);
    };
    let mut r = body.clone();
    r["id"] = json!(format!("{:032x}", rand::random::<u128>()));
    r["package_id"] = p["id"].clone();
    r["state"] = json!("active");
    r["created"] = json!(now());
    if let Some(list) = p["resources"].as_array_mut() {
        list.push(r.clone());
    } else {
        p["resources"] = json!([r.clone()]);
    }
    p["metadata_modified"] = json!(now());
    drop(all);
    counted(&s, A);
    ok(A, r)
}

async fn resource_patch(
    State(s): State<CkanSimulator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    const A: &str = "resource_patch";
    if let Some(r) = refused(&s, &headers, A) {
        return r;
    }
    let Some(id) = body["id"].as_str() else {
        return invalid(A, "id", "Missing value");
    };
    let mut all = s.packages.write().expect("lock");
    for p in all.iter_mut() {
        let Some(list) = p["resources"].as_array_mut() else {
            continue;
        };
        if let Some(r) = list.iter_mut().find(|r| r["id"] == id) {
            for (k, v) in body.as_object().into_iter().flatten() {
                if k != "id" && k != "package_id" {
                    r[k] = v.clone();
                }
            }
            r["last_modified"] = json!(now());
            let result = r.clone();
            p["metadata_modified"] = json!(now());
            drop(all);
            counted(&s, A);
            return ok(A, result);
        }
    }
    not_found(A)
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
