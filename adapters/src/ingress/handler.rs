//! `POST /events`: every event of a request ends published (or found stored already),
//! dead-lettered with its violations, or refused with a 4xx — and is counted so in
//! `lienthong_records_total{path="ingress"}`. 503 only for what a retry can fix.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::publisher::Prepared;
use lienthong_bus::BusError;
use serde_json::{json, Value};

use super::request::{event_bytes, read_events};
use super::{allowed, Ingress, Stored};
use crate::push::problem;

/// How long a request waits for the bus to confirm its events before it is answered 503.
pub const CONFIRM_WITHIN: std::time::Duration = std::time::Duration::from_secs(8);

/// The answer when the bus did not confirm within [`CONFIRM_WITHIN`]: some events may have
/// been stored, which a retry answers `duplicate: true`.
fn not_confirmed() -> Response {
    crate::push::with_retry_after(problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the bus did not confirm in time; retry (re-posting is harmless: what was stored is not stored twice)",
        &format!(
            "no confirmation within {} s: some of these events may have been stored, which a retry answers duplicate: true",
            CONFIRM_WITHIN.as_secs()
        ),
    ))
}

fn problem_with(
    status: StatusCode,
    title: &str,
    detail: &str,
    key: &str,
    items: Value,
) -> Response {
    crate::push::with_retry_after(
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "about:blank", "title": title, "status": status.as_u16(),
                "detail": detail, key: items,
            })),
        )
            .into_response(),
    )
}

pub(super) async fn post_events(
    State(ing): State<Ingress>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let o = &ing.outcomes;
    // `n` events refused (a request whose events cannot be counted counts as one).
    let refused = |n: usize, response: Response| {
        o.refused.add(n as u64);
        response
    };
    let Some(caller) = ing.caller(&headers) else {
        return refused(
            1,
            problem(
                StatusCode::UNAUTHORIZED,
                "missing or unknown token",
                "send Authorization: Bearer <token>",
            ),
        );
    };
    let limit = ing.config.max_body_bytes;
    let too_large = |size: Option<usize>| {
        refused(
            1,
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request too large",
                &format!(
                    "{}the limit is {limit} bytes of event (the body, and in binary mode the ce- headers); send smaller batches",
                    size.map(|s| format!("{s} bytes; ")).unwrap_or_default()
                ),
            ),
        )
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return too_large(None),
        Err(e) => {
            return refused(
                1,
                problem(StatusCode::BAD_REQUEST, "unreadable body", &e.to_string()),
            )
        }
    };
    let size = event_bytes(&headers, &body);
    if size > limit {
        return too_large(Some(size));
    }
    let events = match read_events(&headers, &body) {
        Ok(e) => e,
        Err(r) => {
            let response = if r.violations.is_empty() {
                problem(r.status, r.title, &r.detail)
            } else {
                problem_with(
                    r.status,
                    r.title,
                    &r.detail,
                    "violations",
                    json!(r.violations),
                )
            };
            return refused(r.events.max(1), response);
        }
    };
    let n = events.len();
    // Authorisation: every event's source and type must be the caller's.
    let forbidden: Vec<Value> = events
        .iter()
        .filter(|e| {
            !allowed(&caller.sources, e.source().as_str()) || !allowed(&caller.types, e.ty())
        })
        .map(|e| json!({"id": e.id(), "source": e.source().to_string(), "type": e.ty()}))
        .collect();
    if !forbidden.is_empty() {
        return refused(
            n,
            problem_with(
                StatusCode::FORBIDDEN,
                "source or type not allowed for this token",
                &format!(
                    "caller {} may publish sources {:?} and types {:?}",
                    caller.name, caller.sources, caller.types
                ),
                "events",
                json!(forbidden),
            ),
        );
    }
    // Validation, all or nothing: the invalid are dead-lettered, the rest not published.
    let mut prepared: Vec<Prepared> = Vec::with_capacity(n);
    // Each stored event's source, for the answer (read before the event is encoded).
    let mut sources: Vec<String> = Vec::with_capacity(n);
    let mut invalid: Vec<Value> = Vec::new();
    for event in events {
        let source = event.source().to_string();
        match ing.publisher.prepare(event, None) {
            Ok(p) => {
                prepared.push(p);
                sources.push(source);
            }
            Err(rejected) => {
                let ev = *rejected.event;
                let (id, ty) = (ev.id().to_string(), ev.ty().to_string());
                let Ok(kept) = tokio::time::timeout(
                    CONFIRM_WITHIN,
                    ing.publisher.dead_letter(ev, rejected.error),
                )
                .await
                else {
                    return refused(n - invalid.len(), not_confirmed());
                };
                match kept {
                    BusError::Invalid {
                        violations,
                        dead_letter,
                        ..
                    } => {
                        o.dead_lettered.inc();
                        invalid.push(json!({
                            "id": id, "type": ty, "dead_letter_sequence": dead_letter,
                            "violations": violations,
                        }))
                    }
                    e if e.is_transient() => {
                        return refused(
                            n - invalid.len(),
                            problem(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "the bus cannot store this now; retry",
                                &e.to_string(),
                            ),
                        )
                    }
                    e => {
                        return refused(
                            n - invalid.len(),
                            problem(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "the bus refused",
                                &e.to_string(),
                            ),
                        )
                    }
                }
            }
        }
    }
    if !invalid.is_empty() {
        return refused(
            prepared.len(),
            problem_with(
                StatusCode::BAD_REQUEST,
                "schema violations",
                &format!(
                    "{} event(s) do not match their schema (or are too large); they are kept in the DLQ and nothing of this request was published",
                    invalid.len()
                ),
                "invalid",
                json!(invalid),
            ),
        );
    }
    let n = prepared.len();
    let Ok(results) = tokio::time::timeout(CONFIRM_WITHIN, ing.publisher.send_all(prepared)).await
    else {
        // A server that neither stores nor refuses (its disk filling, a leader lost): the
        // sender is not kept waiting; what was stored meanwhile is not stored twice.
        return refused(n, not_confirmed());
    };
    let mut stored = Vec::with_capacity(results.len());
    let mut failed: Option<BusError> = None;
    for (result, source) in results.into_iter().zip(sources) {
        match result {
            Ok(ack) => {
                if ack.duplicate {
                    o.duplicate.inc();
                } else {
                    o.published.inc();
                }
                stored.push(Stored {
                    id: ack.id,
                    source,
                    stream: ack.stream,
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                });
            }
            Err(e) => {
                o.refused.inc();
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        None => (StatusCode::ACCEPTED, Json(json!({"stored": stored}))).into_response(),
        Some(e) if e.is_transient() => problem_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bus cannot store all of this now; retry (re-posting is harmless: what was stored is not stored twice)",
            &e.to_string(),
            "stored",
            json!(stored),
        ),
        Some(e) => problem_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the bus refused",
            &e.to_string(),
            "stored",
            json!(stored),
        ),
    }
}
