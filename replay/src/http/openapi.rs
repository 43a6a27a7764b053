//! `GET /openapi.json`: the whole HTTP API as an OpenAPI 3.1 document.
//!
//! Each read model describes its endpoints next to their routes ([`crate::read_models::ReadModel::api`]);
//! the service's own (KPIs, catalogue, schemas, health, datasets, administration) are listed
//! here. `tests/openapi.rs` validates the document against the official OpenAPI 3.1 schema
//! and calls every path it lists.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::api::AppState;

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
}

/// One parameter of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub description: &'static str,
    /// `string` or `integer`.
    pub kind: &'static str,
}

/// One answer of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    /// Its media types (the first is the default).
    pub media: &'static [&'static str],
    pub description: &'static str,
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub answers: &'static [Answer],
}

pub const fn query(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        description,
        kind: "string",
    }
}

pub const fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Path,
        description,
        kind: "string",
    }
}

pub const fn ok(media: &'static [&'static str], description: &'static str) -> Answer {
    Answer {
        status: 200,
        media,
        description,
    }
}

pub const JSON: &[&str] = &["application/json"];
pub const JSON_OR_CSV: &[&str] = &["application/json", "text/csv"];
pub const NOT_FOUND: Answer = Answer {
    status: 404,
    media: &["application/problem+json"],
    description: "Not found (RFC 9457 problem)",
};
/// `?format=csv` (or `Accept: text/csv`) for a table.
pub const FORMAT: Param = query("format", "`csv` for CSV (or send `Accept: text/csv`)");

/// The service's own operations (not one read model's).
pub const SERVICE: &[Op] = &[
    Op { method: "get", path: "/", tag: "dashboard", summary: "The IOC dashboard (HTML, Vietnamese by default, `?lang=en`; no network needed)", params: &[query("year", "The year shown"), query("ward", "The ward the panels are filtered to"), query("lang", "`en` for English")], answers: &[ok(&["text/html"], "The dashboard")] },
    Op { method: "get", path: "/api/v1/dashboard", tag: "dashboard", summary: "Every dashboard panel's rows for a year (and a ward): map, trends, overdue and oldest open reports, categories, statuses, applications, agencies", params: &[query("year", "A year (YYYY); the latest with figures by default"), query("ward", "A ward's slug: field reports and meetings of that ward only")], answers: &[ok(JSON, "The panels"), Answer { status: 400, media: &["application/problem+json"], description: "Not a year, or no such ward" }] },
    Op { method: "get", path: "/api/v1/dashboard/{panel}", tag: "dashboard", summary: "One dashboard panel's rows, as JSON or CSV", params: &[path("panel", "wards, trends, overdue, oldest_open, categories, statuses, applications or agencies"), query("year", "A year (YYYY)"), query("ward", "A ward's slug"), FORMAT], answers: &[ok(JSON_OR_CSV, "The panel's rows"), NOT_FOUND] },
    Op { method: "get", path: "/api/v1/live", tag: "dashboard", summary: "Server-Sent Events: the newest events folded (`recent`), then each event as the read models fold it (`event`): stream, sequence, type, time, ward; never the data", params: &[], answers: &[ok(&["text/event-stream"], "An endless event stream")] },
    Op { method: "get", path: "/api/v1/integrity", tag: "dashboard", summary: "The last verification of each audited stream against its signed checkpoints, and alarms", params: &[], answers: &[ok(JSON, "The verdicts")] },
    Op { method: "get", path: "/healthz", tag: "service", summary: "Health: each read model's checkpoint, served tree and point in time", params: &[], answers: &[ok(JSON, "Health")] },
    Op { method: "get", path: "/metrics", tag: "service", summary: "Prometheus metrics (read models, and every record at the edge: lienthong_records_total)", params: &[], answers: &[ok(&["text/plain"], "Metrics in the Prometheus text format")] },
    Op { method: "get", path: "/openapi.json", tag: "service", summary: "This document", params: &[], answers: &[ok(JSON, "OpenAPI 3.1")] },
    Op { method: "get", path: "/api/v1/kpi", tag: "kpi", summary: "The operations centre's summary, one section per subsystem", params: &[query("year", "A year (YYYY); the latest with figures by default")], answers: &[ok(JSON, "The KPIs")] },
    Op { method: "get", path: "/asyncapi.json", tag: "catalogue", summary: "The event catalogue (AsyncAPI 3.0)", params: &[], answers: &[ok(JSON, "AsyncAPI 3.0")] },
    Op { method: "get", path: "/catalog", tag: "catalogue", summary: "The event catalogue and the datasets, for people (Vietnamese)", params: &[], answers: &[ok(&["text/html"], "The catalogue page")] },
    Op { method: "get", path: "/schemas/", tag: "catalogue", summary: "Every event schema", params: &[], answers: &[ok(JSON, "The schema registry's index")] },
    Op { method: "get", path: "/schemas/{path}", tag: "catalogue", summary: "One schema (each event's dataschema resolves here)", params: &[path("path", "e.g. field_reports/report.submitted/v2.json")], answers: &[ok(&["application/schema+json"], "A JSON Schema 2020-12"), NOT_FOUND] },
    Op { method: "get", path: "/api/v1/audit/public-key", tag: "audit", summary: "The Ed25519 key that verifies the audit checkpoints", params: &[], answers: &[ok(JSON, "The key (hex)"), NOT_FOUND] },
    Op { method: "post", path: "/api/v1/admin/rebuild", tag: "admin", summary: "Rebuild read models beside the live ones and swap, while serving (bearer token)", params: &[query("projection", "Only this read model")], answers: &[Answer { status: 202, media: JSON, description: "Rebuilding" }, Answer { status: 401, media: &["application/problem+json"], description: "No or a wrong token" }] },
    Op { method: "get", path: "/api/v1/datasets", tag: "datasets", summary: "The shared datasets: titles, rows, coverage, links", params: &[], answers: &[ok(JSON, "The datasets")] },
    Op { method: "get", path: "/api/v1/datasets/catalog.jsonld", tag: "datasets", summary: "The datasets' DCAT-AP 3 catalogue (JSON-LD, self-contained context)", params: &[], answers: &[ok(&["application/ld+json"], "The catalogue")] },
    Op { method: "get", path: "/api/v1/datasets/{id}", tag: "datasets", summary: "One dataset's DCAT record", params: &[path("id", "The dataset, e.g. field-reports-monthly")], answers: &[ok(&["application/ld+json"], "The record"), NOT_FOUND] },
    Op { method: "get", path: "/api/v1/datasets/{id}/data.csv", tag: "datasets", summary: "The dataset as CSV (withheld small counts empty)", params: &[path("id", "The dataset")], answers: &[ok(&["text/csv"], "The table"), NOT_FOUND] },
    Op { method: "get", path: "/api/v1/datasets/{id}/data.json", tag: "datasets", summary: "The dataset as JSON (withheld small counts null)", params: &[path("id", "The dataset")], answers: &[ok(JSON, "The table's rows"), NOT_FOUND] },
    Op { method: "get", path: "/api/v1/datasets/{id}/schema.json", tag: "datasets", summary: "The dataset's columns (Frictionless Table Schema)", params: &[path("id", "The dataset")], answers: &[ok(JSON, "The table schema"), NOT_FOUND] },
];

/// Every operation: the service's and each read model's.
pub fn operations() -> Vec<Op> {
    let mut ops: Vec<Op> = SERVICE.to_vec();
    ops.extend_from_slice(crate::registered::http::API);
    for m in crate::read_models::all() {
        ops.extend_from_slice(m.api);
    }
    ops
}

/// The OpenAPI 3.1 document, with `server` as its server.
pub fn document(server: &str) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in operations() {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": if p.location == In::Path { "path" } else { "query" },
                    "required": p.location == In::Path,
                    "description": p.description,
                    "schema": {"type": p.kind},
                })
            })
            .collect();
        let mut responses = Map::new();
        for a in op.answers {
            let content: Map<String, Value> = a
                .media
                .iter()
                .map(|m| {
                    let schema = match *m {
                        "application/json" | "application/ld+json" | "application/schema+json" => {
                            json!({"type": ["object", "array"]})
                        }
                        "application/problem+json" => {
                            json!({"$ref": "#/components/schemas/Problem"})
                        }
                        _ => json!({"type": "string"}),
                    };
                    (m.to_string(), json!({"schema": schema}))
                })
                .collect();
            responses.insert(
                a.status.to_string(),
                json!({"description": a.description, "content": content}),
            );
        }
        responses
            .entry("503")
            .or_insert(json!({"description": "The read model is not available now; retry", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}));
        let entry = paths.entry(op.path.to_string()).or_insert(json!({}));
        entry[op.method] = json!({
            "tags": [op.tag],
            "summary": op.summary,
            "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if op.tag == "admin" {
            entry[op.method]["security"] = json!([{"adminToken": []}]);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Lienthong replay service",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Read models, KPIs, shared datasets and the event catalogue of the Lienthong integration bus",
            "description": "Every read model is folded from the audited event history. Tables answer JSON, or CSV with `?format=csv` or `Accept: text/csv`; errors are RFC 9457 problems.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": server}],
        "tags": [
            {"name": "kpi"}, {"name": "field-reports"}, {"name": "documents"}, {"name": "sso"},
            {"name": "open-data"}, {"name": "meetings"}, {"name": "datasets"}, {"name": "catalogue"},
            {"name": "audit"}, {"name": "service"}, {"name": "admin"}, {"name": "dashboard"},
            {"name": "registered"},
        ],
        "paths": paths,
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "securitySchemes": {
                "adminToken": {"type": "http", "scheme": "bearer", "description": "The administration token (data/credentials/replay-admin.token)"},
            },
        },
    })
}

/// `GET /openapi.json`.
pub async fn openapi(State(_): State<AppState>, headers: HeaderMap) -> Response {
    Json(document(&crate::datasets::http::base(&headers))).into_response()
}
