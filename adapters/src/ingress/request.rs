//! Reading a request as CloudEvents, in whichever mode it came, and refusing what the
//! CloudEvents 1.0 specification or the contract does not allow — every violation named with
//! its JSON pointer (`/2/dataclassification` for the third event of a batch,
//! `/headers/ce-time` in binary mode) — before anything is decoded or kept.

use axum::http::{HeaderMap, StatusCode};
use lienthong_bus::cloudevents::Event;
use lienthong_bus::conformance;
use lienthong_bus::Violation;
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// Why a request is refused before any event is considered.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// Envelope violations, by event.
    pub violations: Vec<Violation>,
    /// How many events the request held (as far as it could be read).
    pub events: usize,
}

impl Refusal {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            violations: Vec::new(),
            events: 1,
        }
    }
}

/// Bytes a request brings as event: the body and, in binary mode, every `ce-` header (name
/// and value) — all of which end up in the stored message.
pub fn event_bytes(headers: &HeaderMap, body: &[u8]) -> usize {
    body.len()
        + headers
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("ce-"))
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>()
}

fn envelope_refusal(violations: Vec<Violation>, events: usize) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        title: "not valid CloudEvents 1.0",
        detail: format!(
            "{} violation(s) of the CloudEvents 1.0 specification or the contract; nothing of this request was kept",
            violations.len()
        ),
        violations,
        events,
    }
}

/// The request's events, each conformant.
pub fn read_events(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, Refusal> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let structured = |values: Vec<Value>, pointer: &dyn Fn(usize) -> String| {
        let n = values.len();
        let violations: Vec<Violation> = values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| conformance::check_structured(v, &pointer(i)))
            .collect();
        if !violations.is_empty() {
            return Err(envelope_refusal(violations, n));
        }
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value::<Event>(v).map_err(|e| {
                    let mut r = Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "not a CloudEvent",
                        format!("event {}: {e}", pointer(i)),
                    );
                    r.events = n;
                    r
                })
            })
            .collect()
    };
    if content_type.starts_with("application/cloudevents-batch+json") {
        let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "not a batch",
                format!("the body is not a JSON array of events: {e}"),
            )
        })?;
        if items.is_empty() {
            let mut r = Refusal::new(
                StatusCode::BAD_REQUEST,
                "empty batch",
                "send at least one event",
            );
            r.events = 0;
            return Err(r);
        }
        return structured(items, &|i| format!("/{i}"));
    }
    if content_type.starts_with("application/cloudevents+json") {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "not JSON",
                format!("a structured-mode CloudEvent is a JSON object: {e}"),
            )
        })?;
        return structured(vec![value], &|_| String::new());
    }
    if headers.contains_key("ce-specversion") {
        let mut decoded = Vec::new();
        for (name, value) in headers.iter() {
            if !name.as_str().starts_with("ce-") {
                continue;
            }
            let text = value
                .to_str()
                .ok()
                .and_then(|v| percent_decode_str(v).decode_utf8().ok())
                .map(|v| v.into_owned());
            match text {
                Some(t) => decoded.push((name.as_str(), t)),
                None => {
                    return Err(envelope_refusal(
                        vec![Violation {
                            pointer: format!("/headers/{name}"),
                            message: "not percent-encoded UTF-8".into(),
                            schema_pointer: "cloudevents-1.0".into(),
                        }],
                        1,
                    ))
                }
            }
        }
        let violations = conformance::check_binary(decoded.into_iter());
        if !violations.is_empty() {
            return Err(envelope_refusal(violations, 1));
        }
        let mut h = async_nats::HeaderMap::new();
        for (name, value) in headers {
            if let Ok(v) = value.to_str() {
                let n = match name.as_str() {
                    "content-type" => "Content-Type",
                    n => n,
                };
                h.insert(n, v);
            }
        }
        return lienthong_bus::envelope::decode(Some(&h), body)
            .map(|e| vec![e])
            .map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "not a CloudEvent",
                    format!("binary mode: {e}"),
                )
            });
    }
    Err(Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported content type",
        format!("Content-Type {content_type:?}: use application/cloudevents+json, application/cloudevents-batch+json, or binary mode with ce- headers"),
    ))
}
