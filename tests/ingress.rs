//! The HTTP CloudEvents ingress against a real nats-server: each mode, each error answer,
//! idempotence, and a token that tries a foreign source.

mod common;

use std::time::Duration;

use common::Bus;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;
use lienthong_bus::{DeadLetter, RetryPolicy};
use serde_json::{json, Value};

use common::{INGRESS_SOURCE as SOURCE, INGRESS_TOKEN as TOKEN};

fn submitted(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": format!("dotnet/{id}"), "source": SOURCE,
        "type": "vn.egov.field_reports.report.submitted", "subject": id,
        "time": "2023-11-18T12:42:10Z", "datacontenttype": "application/json",
        "data": {"report_id": id, "category": "CSDT", "category_name": "Chiếu sáng đô thị", "ward": "phu-thuy",
                 "status": "open", "description": "Đèn hỏng", "requested_at": "2023-11-18T19:42:10+07:00"}
    })
}

async fn start(bus: &Bus, retry: RetryPolicy, timeout: Duration) -> String {
    common::start_ingress(bus, 64 * 1024, retry, timeout)
        .await
        .0
}

fn post(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().post(url).bearer_auth(TOKEN)
}

/// Posts `body` as `content_type` with the caller's token.
async fn send(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    post(url)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn structured_binary_and_batch_are_stored_once() {
    let bus = Bus::start().await;
    let url = start(&bus, RetryPolicy::default(), Duration::from_secs(5)).await;

    let r = send(
        &url,
        "application/cloudevents+json",
        submitted("S-1").to_string(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["stored"][0]["id"], "dotnet/S-1");
    assert_eq!(body["stored"][0]["source"], submitted("S-1")["source"]);
    assert_eq!(body["stored"][0]["stream"], "FIELD_REPORTS");
    assert_eq!(body["stored"][0]["duplicate"], false);

    // Binary mode: attributes in ce- headers (percent-encoded), data in the body.
    let data = submitted("B.2 >")["data"].to_string();
    let r = post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "dotnet/B-2")
        .header("ce-source", SOURCE)
        .header("ce-type", "vn.egov.field_reports.report.submitted")
        .header("ce-subject", "B.2%20%3E")
        .header("ce-time", "2023-11-18T12:42:10Z")
        .header("Content-Type", "application/json")
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // Batch mode.
    let batch = json!([submitted("T-3"), submitted("T-4")]);
    let r = send(
        &url,
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["stored"].as_array().unwrap().len(), 2);

    // Re-posting is harmless.
    let r = send(
        &url,
        "application/cloudevents+json",
        submitted("S-1").to_string(),
    )
    .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["stored"][0]["duplicate"], true);

    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    assert_eq!(msgs.len(), 4);
    let subjects: Vec<String> = msgs.iter().map(|m| m.subject.to_string()).collect();
    assert!(
        subjects.contains(&"egov.field_reports.report.B~2E2~20~3E.submitted".to_string()),
        "{subjects:?}"
    );
    for m in &msgs {
        let ev = decode_stored(m, Some(&bus.registry)).unwrap();
        assert_eq!(ev.event.source().as_str(), SOURCE);
        assert!(
            ev.event.dataschema().is_some(),
            "the ingress names the schema it validated against"
        );
    }
}

#[tokio::test]
async fn every_error_has_its_answer() {
    let bus = Bus::start().await;
    let url = start(&bus, RetryPolicy::default(), Duration::from_secs(5)).await;
    let ce = "application/cloudevents+json";

    // 401: no token, unknown token.
    let r = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", ce)
        .body(submitted("X").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth("guess")
        .header("Content-Type", ce)
        .body(submitted("X").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // 403: a foreign source, or a type outside the token's.
    let mut foreign = submitted("X");
    foreign["source"] = json!("urn:lienthong:phanthiet:documents");
    let r = send(&url, ce, foreign.to_string()).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["events"][0]["source"],
        "urn:lienthong:phanthiet:documents"
    );
    let mut other_type = submitted("X");
    other_type["type"] = json!("vn.egov.documents.document.sent");
    assert_eq!(send(&url, ce, other_type.to_string()).await.status(), 403);

    // 400: every violation with its pointer; kept in the DLQ only; nothing of the batch published.
    let mut bad = submitted("BAD");
    bad["data"]["ward"] = json!("quan-1");
    bad["data"]["phone"] = json!("0905123456");
    bad["data"].as_object_mut().unwrap().remove("requested_at");
    let batch = json!([submitted("OK-1"), bad]);
    let r = send(
        &url,
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    let invalid = &body["invalid"][0];
    assert_eq!(invalid["id"], "dotnet/BAD");
    let pointers: Vec<&str> = invalid["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    assert!(pointers.contains(&"/ward"), "{pointers:?}");
    assert_eq!(
        pointers.iter().filter(|p| p.is_empty()).count(),
        2,
        "missing requested_at and the extra phone, at the root: {pointers:?}"
    );
    assert!(
        bus.read_all("auditor", "FIELD_REPORTS").await.is_empty(),
        "nothing of the request published"
    );
    let dlq = bus.read_all("auditor", "DLQ").await;
    assert_eq!(dlq.len(), 1);
    let letter =
        DeadLetter::from_event(&decode_stored(&dlq[0], Some(&bus.registry)).unwrap().event)
            .unwrap();
    assert_eq!(letter.original_id, "dotnet/BAD");

    // 400 for what is not a CloudEvent (kept as a digest), 415 for another content type.
    let r = send(&url, ce, "{\"not\": \"an event\"}").await;
    assert_eq!(r.status(), 400);
    let r = send(&url, "text/plain", "hello").await;
    assert_eq!(r.status(), 415);

    // 413: over the body limit.
    let mut big = submitted("BIG");
    big["data"]["description"] = json!("x".repeat(70 * 1024));
    let r = send(&url, ce, big.to_string()).await;
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn nothing_is_acknowledged_that_is_not_stored() {
    let mut bus = Bus::start().await;
    let quick = RetryPolicy {
        attempts: 2,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(100),
    };
    let url = start(&bus, quick, Duration::from_millis(500)).await;
    bus.server.kill().await;
    let r = send(
        &url,
        "application/cloudevents+json",
        submitted("DOWN").to_string(),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5"),
        "a 503 says when to try again"
    );
    let body: Value = r.json().await.unwrap();
    assert!(body["title"].as_str().unwrap().contains("retry"), "{body}");
}
