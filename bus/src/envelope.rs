//! CloudEvents ↔ NATS binding.
//!
//! Writers use **structured mode**: the whole event as JSON in the payload, with
//! `Content-Type: application/cloudevents+json` (the only mode of the released NATS
//! binding). Readers also accept **binary mode**: attributes in `ce-` headers (lower-case
//! names, percent-encoded values), `Content-Type` as `datacontenttype`, data in the payload.

use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{BusError, Result};

pub use cloudevents;

/// `Content-Type` of structured-mode CloudEvents.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// The `Content-Type` header's name, built once (a `&str` name is parsed on every use).
pub const CONTENT_TYPE: async_nats::header::HeaderName =
    async_nats::header::HeaderName::from_static("Content-Type");
/// `datacontenttype` of every event the bus writes.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// Extension naming how sensitive the data is.
pub const EXT_CLASSIFICATION: &str = "dataclassification";
/// W3C trace context extension.
pub const EXT_TRACEPARENT: &str = "traceparent";

/// How sensitive an event's data is (the `dataclassification` extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    Public,
    #[default]
    Internal,
    Confidential,
    Restricted,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Confidential => "confidential",
            Self::Restricted => "restricted",
        }
    }
}

/// Builds a CloudEvent with JSON data.
#[allow(clippy::too_many_arguments)]
pub fn build_event(
    id: &str,
    source: &str,
    ty: &str,
    subject: &str,
    time: DateTime<Utc>,
    dataschema: &str,
    data: Value,
    classification: Classification,
    traceparent: Option<&str>,
) -> Result<Event> {
    let mut builder = EventBuilderV10::new()
        .id(id)
        .source(source)
        .ty(ty)
        .subject(subject)
        .time(time)
        .data_with_schema(DATA_CONTENT_TYPE, dataschema, data)
        .extension(EXT_CLASSIFICATION, classification.as_str());
    if let Some(tp) = traceparent {
        builder = builder.extension(EXT_TRACEPARENT, tp);
    }
    builder.build().map_err(|e| BusError::Envelope {
        reason: e.to_string(),
    })
}

/// The structured-mode JSON of an event with JSON data, written directly from its parts and
/// appended to `out` (a buffer the caller sized: a payload outgrowing its buffer is copied as
/// it grows): what [`encode_structured`] writes for the event [`build_event`] makes from the
/// same parts (a test holds them equal), without building a cloudevents-sdk `Event` first.
#[allow(clippy::too_many_arguments)]
pub fn encode_parts(
    out: &mut Vec<u8>,
    id: &str,
    source: &str,
    ty: &str,
    subject: &str,
    time: &DateTime<Utc>,
    dataschema: &str,
    data: &Value,
    classification: Classification,
    traceparent: Option<&str>,
) -> Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        specversion: &'static str,
        id: &'a str,
        #[serde(rename = "type")]
        ty: &'a str,
        source: &'a str,
        datacontenttype: &'static str,
        dataschema: &'a str,
        subject: &'a str,
        time: crate::rfc3339::Rfc3339<'a>,
        data: &'a Value,
        #[serde(rename = "dataclassification")]
        classification: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        traceparent: Option<&'a str>,
    }
    serde_json::to_writer(
        out,
        &Out {
            specversion: "1.0",
            id,
            ty,
            source,
            datacontenttype: DATA_CONTENT_TYPE,
            dataschema,
            subject,
            time: crate::rfc3339::Rfc3339(time),
            data,
            classification: classification.as_str(),
            traceparent,
        },
    )
    .map_err(|e| BusError::Envelope {
        reason: e.to_string(),
    })
}

/// Encodes an event in structured mode.
pub fn encode_structured(event: &Event) -> Result<Vec<u8>> {
    serde_json::to_vec(event).map_err(|e| BusError::Envelope {
        reason: e.to_string(),
    })
}

/// Decodes a NATS message (headers + payload) as a CloudEvent, structured or binary mode.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Event> {
    match (is_binary(headers), headers) {
        (true, Some(h)) => decode_binary(h, payload),
        _ => serde_json::from_slice::<Event>(payload).map_err(|e| BusError::Envelope {
            reason: format!("structured mode: {e}"),
        }),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}

fn decode_binary(headers: &HeaderMap, payload: &[u8]) -> Result<Event> {
    let bad = |reason: String| BusError::Envelope { reason };
    let attr = |name: &str| -> Result<Option<String>> {
        match header(headers, name) {
            None => Ok(None),
            Some(raw) => percent_decode_str(raw)
                .decode_utf8()
                .map(|s| Some(s.into_owned()))
                .map_err(|e| bad(format!("{name}: {e}"))),
        }
    };
    let required = |name: &str| -> Result<String> {
        attr(name)?.ok_or_else(|| bad(format!("binary mode: header {name} is missing")))
    };
    let specversion = required("ce-specversion")?;
    if specversion != "1.0" {
        return Err(bad(format!("unsupported specversion {specversion}")));
    }
    let mut builder = EventBuilderV10::new()
        .id(required("ce-id")?)
        .source(required("ce-source")?)
        .ty(required("ce-type")?);
    if let Some(s) = attr("ce-subject")? {
        builder = builder.subject(s);
    }
    if let Some(t) = attr("ce-time")? {
        builder = builder.time(t);
    }
    let content_type = header(headers, "Content-Type")
        .or_else(|| header(headers, "content-type"))
        .map(str::to_string);
    for (name, values) in headers.iter() {
        let name = name.to_string().to_ascii_lowercase();
        let Some(ext) = name.strip_prefix("ce-") else {
            continue;
        };
        if matches!(
            ext,
            "specversion" | "id" | "source" | "type" | "subject" | "time" | "dataschema"
        ) {
            continue;
        }
        if let Some(v) = values.first() {
            let value = percent_decode_str(v.as_str())
                .decode_utf8()
                .map_err(|e| bad(format!("{name}: {e}")))?;
            builder = builder.extension(ext, value.as_ref());
        }
    }
    let is_json = content_type
        .as_deref()
        .map(|c| c.starts_with("application/json") || c.contains("+json"))
        .unwrap_or(true);
    let data: Data = if is_json {
        Data::Json(
            serde_json::from_slice(payload).map_err(|e| bad(format!("data is not JSON: {e}")))?,
        )
    } else {
        Data::Binary(payload.to_vec())
    };
    let ct = content_type.unwrap_or_else(|| DATA_CONTENT_TYPE.to_string());
    builder = match attr("ce-dataschema")? {
        Some(schema) => builder.data_with_schema(ct, schema, data),
        None => builder.data(ct, data),
    };
    builder.build().map_err(|e| bad(e.to_string()))
}

/// A structured-mode event read for folding: the attributes projections use, borrowed from
/// the payload, and the data. Several times cheaper than a full [`Event`] (no URL or
/// extension parsing); for the replay's hot path. Binary mode still goes through [`decode`].
#[derive(Debug, Deserialize)]
pub struct Structured<'a, D = sonic_rs::Value> {
    #[serde(borrow)]
    pub specversion: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub source: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub ty: std::borrow::Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "optional_borrowed")]
    pub subject: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_borrowed")]
    pub time: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_borrowed")]
    pub dataschema: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub data: Option<D>,
}

/// An optional string borrowed from the payload when it has no escapes: serde's derive
/// borrows a `Cow<str>` field but copies one inside an `Option` (serde-rs/serde#1497).
fn optional_borrowed<'de: 'a, 'a, D>(
    d: D,
) -> std::result::Result<Option<std::borrow::Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Borrowed<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

/// Most `[` and `{` a payload may hold to be parsed straight into an arena value: sonic-rs
/// recurses once per level with no limit of its own (100,000 levels overflow a thread's
/// stack), serde_json stops at 128. Fewer openings than that bound the depth without parsing.
const ARENA_MAX_OPENINGS: usize = 128;

impl<'a> Structured<'a> {
    /// Reads a structured-mode payload (`None` when the headers say binary mode), its data
    /// parsed into one arena ([`crate::arena_json`]): several times cheaper to build and free
    /// than a `serde_json::Value`. A payload that could nest deeper than serde_json allows is
    /// read by serde_json (refused past 128 levels) and its data moved into an arena after.
    pub fn read(headers: Option<&HeaderMap>, payload: &'a [u8]) -> Option<Result<Self>> {
        if is_binary(headers) {
            return None;
        }
        if !more_openings_than(payload, ARENA_MAX_OPENINGS) {
            return Some(checked(sonic_rs::from_slice(payload)));
        }
        Some(
            checked(serde_json::from_slice::<Structured<'a, Value>>(payload)).and_then(|s| {
                let data = s
                    .data
                    .as_ref()
                    .map(sonic_rs::to_value)
                    .transpose()
                    .map_err(|e| BusError::Envelope {
                        reason: format!("structured mode: {e}"),
                    })?;
                Ok(Structured {
                    specversion: s.specversion,
                    id: s.id,
                    source: s.source,
                    ty: s.ty,
                    subject: s.subject,
                    time: s.time,
                    dataschema: s.dataschema,
                    data,
                })
            }),
        )
    }
}

/// Whether `payload` holds more than `most` `[` and `{` bytes. Counted a chunk at a time
/// in byte-wide sums (which the compiler turns into wide compares and adds, where a count
/// per byte into a `usize` went two bytes at a time), stopping once past `most`.
fn more_openings_than(payload: &[u8], most: usize) -> bool {
    let mut seen = 0;
    for chunk in payload.chunks(255) {
        let n = chunk
            .iter()
            .fold(0u8, |n, &b| n + u8::from(b == b'[' || b == b'{'));
        seen += usize::from(n);
        if seen > most {
            return true;
        }
    }
    false
}

/// Whether the headers say binary mode (`ce-specversion`).
fn is_binary(headers: Option<&HeaderMap>) -> bool {
    // A static name: looking a `&str` up builds a header name (and allocates) each time.
    const CE_SPECVERSION: async_nats::header::HeaderName =
        async_nats::header::HeaderName::from_static("ce-specversion");
    headers.is_some_and(|h| h.get(CE_SPECVERSION).is_some())
}

/// A parsed structured-mode payload, refused when it did not parse or is not CloudEvents 1.0.
fn checked<'a, D>(
    parsed: std::result::Result<Structured<'a, D>, impl std::fmt::Display>,
) -> Result<Structured<'a, D>> {
    let s = parsed.map_err(|e| BusError::Envelope {
        reason: format!("structured mode: {e}"),
    })?;
    if s.specversion == "1.0" {
        Ok(s)
    } else {
        Err(BusError::Envelope {
            reason: format!("unsupported specversion {}", s.specversion),
        })
    }
}

/// The event's data as JSON (`None` when it has none or it is not JSON).
pub fn data_json(event: &Event) -> Option<Value> {
    match event.data()? {
        Data::Json(v) => Some(v.clone()),
        Data::String(s) => serde_json::from_str(s).ok(),
        Data::Binary(b) => serde_json::from_slice(b).ok(),
    }
}

/// A string extension's value.
pub fn extension_str<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    match event.extension(name)? {
        ExtensionValue::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The `dataschema` as a string.
pub fn dataschema(event: &Event) -> Option<String> {
    event.dataschema().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openings_are_counted_across_chunks_as_a_plain_count_would() {
        let plain = |p: &[u8]| p.iter().filter(|&&b| b == b'[' || b == b'{').count();
        // Lengths around the chunk size, openings spread, packed and at the edges.
        for len in [0, 1, 254, 255, 256, 509, 510, 511, 2_000] {
            for every in [1, 2, 3, 7, 255, 256] {
                let payload: Vec<u8> = (0..len)
                    .map(|i| match i % every {
                        0 if i % 2 == 0 => b'[',
                        0 => b'{',
                        _ => b'a',
                    })
                    .collect();
                for most in [0, 1, 128, 255, 256, 1_000] {
                    assert_eq!(
                        more_openings_than(&payload, most),
                        plain(&payload) > most,
                        "len {len}, every {every}, most {most}"
                    );
                }
            }
        }
    }

    #[test]
    fn structured_attributes_are_borrowed_unless_escaped() {
        use std::borrow::Cow;
        let payload = encode_structured(&sample()).unwrap();
        let s = Structured::read(None, &payload).unwrap().unwrap();
        for a in [&s.subject, &s.time, &s.dataschema] {
            assert!(matches!(a, Some(Cow::Borrowed(_))), "{a:?}");
        }
        assert_eq!(s.subject.as_deref(), Some("PT-1"));
        // An escape is read into a copy; a missing attribute is none.
        let escaped =
            br#"{"specversion":"1.0","id":"e","source":"s","type":"t","subject":"P\"T","data":{}}"#;
        let s = Structured::read(None, escaped).unwrap().unwrap();
        assert!(matches!(&s.subject, Some(Cow::Owned(k)) if k == "P\"T"));
        assert_eq!((s.time, s.dataschema), (None, None));
        // The same through serde_json (payloads with many openings).
        let many = format!(
            r#"{{"specversion":"1.0","id":"e","source":"s","type":"t","subject":"k","time":"2023-11-18T12:42:10Z","data":{{"n":"{}"}}}}"#,
            "[".repeat(200)
        );
        let s = Structured::read(None, many.as_bytes()).unwrap().unwrap();
        assert!(matches!(&s.subject, Some(Cow::Borrowed("k"))));
        assert!(matches!(
            &s.time,
            Some(Cow::Borrowed("2023-11-18T12:42:10Z"))
        ));
    }

    fn sample() -> Event {
        build_event(
            "report/PT-1/submitted",
            "urn:lienthong:test",
            "vn.egov.field_reports.report.submitted",
            "PT-1",
            "2023-11-18T12:42:10Z".parse().unwrap(),
            "https://lienthong.vn/schemas/field_reports/report.submitted/v1.json",
            json!({"report_id": "PT-1", "text": "Đèn đường"}),
            Classification::Public,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        .unwrap()
    }

    #[test]
    fn encoding_from_parts_is_the_sdk_encoding() {
        for (time, traceparent) in [
            ("2023-11-18T12:42:10Z", None),
            (
                "2023-11-18T12:42:10.123456789+07:00",
                Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ),
        ] {
            let time: DateTime<Utc> = time.parse().unwrap();
            let data = json!({"report_id": "PT.1 >", "text": "Đèn \"đường\"\n", "n": [1, 2.5]});
            let parts = (
                "report/PT.1 >/submitted",
                "urn:lienthong:test",
                "vn.egov.field_reports.report.submitted",
                "PT.1 >",
                "https://lienthong.vn/schemas/field_reports/report.submitted/v1.json",
            );
            let sdk = build_event(
                parts.0,
                parts.1,
                parts.2,
                parts.3,
                time,
                parts.4,
                data.clone(),
                Classification::Confidential,
                traceparent,
            )
            .unwrap();
            let mut direct = Vec::new();
            encode_parts(
                &mut direct,
                parts.0,
                parts.1,
                parts.2,
                parts.3,
                &time,
                parts.4,
                &data,
                Classification::Confidential,
                traceparent,
            )
            .unwrap();
            // Same event when read back, and the same JSON document as the SDK writes.
            assert_eq!(decode(None, &direct).unwrap(), sdk);
            let a: Value = serde_json::from_slice(&direct).unwrap();
            let b: Value = serde_json::from_slice(&encode_structured(&sdk).unwrap()).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn structured_round_trip() {
        let ev = sample();
        let bytes = encode_structured(&ev).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains("\"specversion\":\"1.0\""));
        assert!(text.contains("\"dataclassification\":\"public\""));
        let back = decode(None, &bytes).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn binary_mode_with_percent_encoding() {
        let mut h = HeaderMap::new();
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", "abc");
        h.insert("ce-source", "urn:x");
        h.insert("ce-type", "vn.egov.field_reports.report.submitted");
        h.insert("ce-subject", "PT%2E2023%2F1003%20%3E");
        h.insert("ce-time", "2023-11-18T12:42:10Z");
        h.insert("ce-dataschema", "https://lienthong.vn/schemas/x/v1.json");
        h.insert("ce-dataclassification", "internal");
        h.insert("ce-note", "Ph%C6%B0%E1%BB%9Dng");
        h.insert("Content-Type", "application/json");
        let ev = decode(Some(&h), br#"{"a":1}"#).unwrap();
        assert_eq!(ev.id(), "abc");
        assert_eq!(ev.subject(), Some("PT.2023/1003 >"));
        assert_eq!(extension_str(&ev, "note"), Some("Phường"));
        assert_eq!(extension_str(&ev, EXT_CLASSIFICATION), Some("internal"));
        assert_eq!(data_json(&ev), Some(json!({"a":1})));
        assert_eq!(
            dataschema(&ev).as_deref(),
            Some("https://lienthong.vn/schemas/x/v1.json")
        );
    }

    #[test]
    fn binary_mode_missing_attribute_is_named() {
        let mut h = HeaderMap::new();
        h.insert("ce-specversion", "1.0");
        h.insert("ce-id", "abc");
        h.insert("ce-type", "t");
        let err = decode(Some(&h), b"{}").unwrap_err().to_string();
        assert!(err.contains("ce-source"), "{err}");
    }

    #[test]
    fn garbage_is_an_envelope_error() {
        assert!(matches!(
            decode(None, b"not json"),
            Err(BusError::Envelope { .. })
        ));
    }
}
