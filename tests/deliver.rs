//! Webhook delivery against real servers and real HTTP receivers: every event of the
//! agency's copy arrives, signed as Standard Webhooks, in stream order; a receiver down for a
//! while gets everything when it is back, repeats only with the same `webhook-id`; a
//! deliverer restarted resumes from its durable position; a receiver answering 410 ends its
//! subscription; the official Standard Webhooks library (Python) verifies the signatures.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use chrono::TimeZone;
use common::Bus;
use hmac::Mac;
use lienthong_bus::agencies::events::Mode;
use lienthong_bus::{Classification, EventDraft, EventType, Shutdown};
use lienthong_deliver::admin::{subscribe, SubscribeRequest};
use lienthong_deliver::{DeliverOptions, Deliverer, Secret};
use serde_json::{json, Value};

fn report(id: &str, n: u32) -> EventDraft {
    EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("report/{id}/submitted"),
        id.to_string(),
        chrono::Utc
            .with_ymd_and_hms(2023, 5, 1, 1, 0, n % 60)
            .unwrap(),
        json!({"report_id": id, "category": "VSMT", "category_name": "Vệ sinh môi trường",
            "ward": "xuan-an", "status": "open", "description": format!("report {n}"),
            "requested_at": "2023-05-01T08:00:00+07:00"}),
        Classification::Public,
    )
}

async fn publish_reports(bus: &Bus, from: u32, to: u32) -> Vec<String> {
    let p = bus
        .publisher("adapter-field_reports", "urn:test:field_reports")
        .await;
    let mut ids = Vec::new();
    for n in from..to {
        let id = format!("PT-{n:04}");
        p.publish(report(&id, n)).await.unwrap();
        ids.push(format!("report/{id}/submitted"));
    }
    ids
}

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    webhook_id: String,
    headers: HeaderMap,
    body: bytes::Bytes,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A receiver on `addr` (0: any port) that takes everything; it stops when the trigger is
/// fired or dropped.
async fn receiver(addr: SocketAddr, inbox: Inbox) -> (SocketAddr, lienthong_bus::ShutdownTrigger) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let inbox = inbox.clone();
            async move {
                let webhook_id = headers
                    .get("webhook-id")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                inbox.lock().unwrap().push(Received {
                    webhook_id,
                    headers,
                    body,
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let (trigger, shutdown) = Shutdown::new();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.signalled())
            .await
    });
    (addr, trigger)
}

/// The signature, computed here from the specification (not with the crate's code).
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn deliverer(
    bus: &Bus,
    client: async_nats::Client,
    dir: &Path,
    metrics: lienthong_bus::Metrics,
) -> Deliverer {
    Deliverer::new(
        client,
        lienthong_bus::Refusals::none(),
        bus.registry.clone(),
        dir,
        DeliverOptions {
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
            failing_after: 3,
            request_timeout: Duration::from_secs(2),
            batch: 20,
            ..Default::default()
        },
        metrics,
    )
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_event_arrives_signed_in_order_through_an_outage_and_a_restart() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    let mut all = publish_reports(&bus, 0, 40).await;
    agencies
        .admin
        .add(
            "health",
            lienthong_bus::agencies::grants(&["FIELD_REPORTS".into()], &[]).unwrap(),
            None,
        )
        .await
        .unwrap();
    let inbox: Inbox = Arc::default();
    let (addr, up) = receiver("127.0.0.1:0".parse().unwrap(), inbox.clone()).await;
    let secret = Secret::generate();
    let id = subscribe(
        &agencies.admin,
        SubscribeRequest {
            agency: "health".into(),
            name: "hook".into(),
            stream: "FIELD_REPORTS".into(),
            types: vec!["vn.egov.field_reports.report.submitted".into()],
            subjects: vec![],
            webhook: format!("http://{addr}/hook?token=abc").parse().unwrap(),
            secret: secret.clone(),
            mode: Mode::Binary,
        },
    )
    .await
    .unwrap();
    assert_eq!(id, "health.hook");
    // A receiver beyond loopback over plain http is refused: events never go in the clear.
    let plain = subscribe(
        &agencies.admin,
        SubscribeRequest {
            agency: "health".into(),
            name: "plain".into(),
            stream: "FIELD_REPORTS".into(),
            types: vec![],
            subjects: vec![],
            webhook: "http://so-xay-dung.example/hook".parse().unwrap(),
            secret: Secret::generate(),
            mode: Mode::Binary,
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        plain.contains("in the clear") && plain.contains("https://"),
        "{plain}"
    );

    let metrics = lienthong_bus::Metrics::new();
    let deliver_client = bus.client("deliver").await;
    let (stop_first, first) = Shutdown::new();
    tokio::spawn(
        deliverer(&bus, deliver_client.clone(), dir.path(), metrics.clone()).run(first.signalled()),
    );
    wait_until("the first 40 events", Duration::from_secs(20), || {
        inbox.lock().unwrap().len() >= 40
    })
    .await;

    // The receiver goes down; more events come; the deliverer is restarted meanwhile.
    up.fire();
    tokio::time::sleep(Duration::from_millis(200)).await;
    all.extend(publish_reports(&bus, 40, 70).await);
    let registry = || async { agencies.admin.registry().await.unwrap() };
    let start = Instant::now();
    while registry().await.subscriptions[&id].failing.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never marked failing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metrics.value(
            "lienthong_webhook_failing",
            &[("subscription", "health.hook")]
        ),
        1
    );
    drop(stop_first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_stop_second, second) = Shutdown::new();
    tokio::spawn(
        deliverer(&bus, deliver_client, dir.path(), metrics.clone()).run(second.signalled()),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back on the same address: everything arrives.
    let (_, _up_again) = receiver(addr, inbox.clone()).await;
    wait_until("every event", Duration::from_secs(30), || {
        let got: BTreeSet<String> = inbox
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.webhook_id.clone())
            .collect();
        got.len() == all.len()
    })
    .await;
    let start = Instant::now();
    while registry().await.subscriptions[&id].failing.is_some() {
        assert!(start.elapsed() < Duration::from_secs(10), "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let received = inbox.lock().unwrap().clone();
    // In stream order (first arrivals), nothing missing; a repeat only as the same event.
    let mut firsts = Vec::new();
    for r in &received {
        if !firsts.contains(&r.webhook_id) {
            firsts.push(r.webhook_id.clone());
        }
    }
    assert_eq!(firsts, all);
    assert!(received.len() <= all.len() + 2, "{} POSTs", received.len());
    for r in &received {
        let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_string();
        let timestamp = h("webhook-timestamp");
        assert_eq!(
            h("webhook-signature"),
            expected_signature(&secret.to_text(), &r.webhook_id, &timestamp, &r.body)
        );
        // Binary mode: the attributes as ce- headers, the data as the body.
        assert_eq!(h("ce-id"), r.webhook_id);
        assert_eq!(h("ce-type"), "vn.egov.field_reports.report.submitted");
        assert_eq!(h("ce-specversion"), "1.0");
        assert_eq!(h("content-type"), "application/json");
        let data: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            format!("report/{}/submitted", data["report_id"].as_str().unwrap()),
            r.webhook_id
        );
    }
    // The registry recorded the outage, without the URL's token.
    let events = bus.read_all("auditor", "AGENCIES").await;
    let text: Vec<String> = events
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert!(text.iter().any(|t| t.contains("subscription.failing")));
    assert!(text.iter().any(|t| t.contains("subscription.recovered")));
    assert!(!text.iter().any(|t| t.contains("token=abc")));
    assert_eq!(
        metrics.value(
            "lienthong_webhook_failing",
            &[("subscription", "health.hook")]
        ),
        0
    );
}

/// A receiver that answers 503 to one event, `times` times, and takes everything else.
async fn flaky_receiver(inbox: Inbox, bad_id: String, times: usize) -> SocketAddr {
    let failures = Arc::new(Mutex::new(0usize));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let (inbox, failures, bad_id) = (inbox.clone(), failures.clone(), bad_id.clone());
            async move {
                let webhook_id = headers
                    .get("webhook-id")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                if webhook_id == bad_id {
                    let mut f = failures.lock().unwrap();
                    if *f < times {
                        *f += 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                }
                inbox.lock().unwrap().push(Received {
                    webhook_id,
                    headers,
                    body,
                });
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn an_event_that_fails_holds_back_those_after_it_and_a_lost_position_is_recreated() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    let all = publish_reports(&bus, 0, 30).await;
    let files = agencies
        .admin
        .add(
            "water",
            lienthong_bus::agencies::grants(&["FIELD_REPORTS".into()], &[]).unwrap(),
            None,
        )
        .await
        .unwrap();
    let inbox: Inbox = Arc::default();
    // The 7th event fails three times, in the middle of a batch.
    let addr = flaky_receiver(inbox.clone(), all[6].clone(), 3).await;
    subscribe(
        &agencies.admin,
        SubscribeRequest {
            agency: "water".into(),
            name: "hook".into(),
            stream: "FIELD_REPORTS".into(),
            types: vec![],
            subjects: vec![],
            webhook: format!("http://{addr}/hook").parse().unwrap(),
            secret: Secret::generate(),
            mode: Mode::Binary,
        },
    )
    .await
    .unwrap();
    let (_stop, shutdown) = Shutdown::new();
    tokio::spawn(
        deliverer(
            &bus,
            bus.client("deliver").await,
            dir.path(),
            lienthong_bus::Metrics::new(),
        )
        .run(shutdown.signalled()),
    );
    wait_until("every event", Duration::from_secs(20), || {
        inbox.lock().unwrap().len() >= all.len()
    })
    .await;
    let got: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.webhook_id.clone())
        .collect();
    assert_eq!(
        got, all,
        "in stream order, nothing overtaking the held event"
    );

    // The agency deletes the subscription's position (it may: it is its account); the
    // deliverer recreates it and delivers again from the first event, same webhook-ids.
    let (client, _) = bus.connect_env(&files.agency).await;
    async_nats::jetstream::new(client)
        .get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .delete_consumer("webhook-hook")
        .await
        .unwrap();
    let more = publish_reports(&bus, 30, 31).await;
    wait_until("a recreated position", Duration::from_secs(30), || {
        inbox
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.webhook_id == more[0])
    })
    .await;
    let again: BTreeSet<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.webhook_id.clone())
        .collect();
    assert_eq!(
        again.len(),
        all.len() + 1,
        "repeats only as the same webhook-ids"
    );

    // Revoking the agency ends its subscription: recorded, and its secret and URL forgotten.
    assert!(dir.path().join("webhooks/water.hook.json").exists());
    agencies.admin.revoke("water", None).await.unwrap();
    assert!(!dir.path().join("webhooks/water.hook.json").exists());
    let removed = bus
        .read_all("auditor", "AGENCIES")
        .await
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .filter(|t| t.contains("subscription.removed"))
        .count();
    assert_eq!(removed, 1);
}

#[tokio::test]
async fn the_standard_webhooks_library_verifies_and_a_410_ends_the_subscription() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    // Ids outside ASCII (as edXML document numbers have: `QĐ-UBND`) travel percent-encoded.
    let p = bus
        .publisher("adapter-field_reports", "urn:test:field_reports")
        .await;
    let mut all = Vec::new();
    for n in 0..8u32 {
        let mut d = report(&format!("PT-{n:04}"), n);
        d.id = format!("report/{n}/QĐ-UBND");
        p.publish(d).await.unwrap();
        all.push(format!("report/{n}/Q%C4%90-UBND"));
    }
    agencies
        .admin
        .add(
            "parks",
            lienthong_bus::agencies::grants(&["FIELD_REPORTS".into()], &[]).unwrap(),
            None,
        )
        .await
        .unwrap();
    // The receiver: Python, checking each signature with the official library, answering
    // 410 Gone after the fifth event.
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/python");
    assert!(
        tools.join("standardwebhooks").exists(),
        "the Python Standard Webhooks library is missing from {}: run ./scripts/install-python-sdk (./scripts/test does)",
        tools.display()
    );
    let secret = Secret::generate();
    let log = dir.path().join("received.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut python = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/webhook_receiver.py"))
        .args([
            &port.to_string(),
            &secret.to_text(),
            log.to_str().unwrap(),
            "5",
        ])
        .env("PYTHONPATH", &tools)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the cross-language test");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(python.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    subscribe(
        &agencies.admin,
        SubscribeRequest {
            agency: "parks".into(),
            name: "portal".into(),
            stream: "FIELD_REPORTS".into(),
            types: vec![],
            subjects: vec![],
            webhook: format!("http://127.0.0.1:{port}/events").parse().unwrap(),
            secret,
            mode: Mode::Structured,
        },
    )
    .await
    .unwrap();
    let (_stop, shutdown) = Shutdown::new();
    tokio::spawn(
        deliverer(
            &bus,
            bus.client("deliver").await,
            dir.path(),
            lienthong_bus::Metrics::new(),
        )
        .run(shutdown.signalled()),
    );
    let start = Instant::now();
    loop {
        let registry = agencies.admin.registry().await.unwrap();
        if registry.subscriptions.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the 410 did not end it"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = python.kill();
    let _ = python.wait();
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every POST verified by the library; the first five in order, the sixth answered 410.
    assert!(lines.iter().all(|l| l["verified"] == true), "{lines:?}");
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids[..6],
        all.iter().map(String::as_str).collect::<Vec<_>>()[..6]
    );
    assert_eq!(
        lines[0]["specversion"], "1.0",
        "structured mode: the whole event"
    );
    let removed = bus
        .read_all("auditor", "AGENCIES")
        .await
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .find(|t| t.contains("subscription.removed"))
        .expect("a subscription.removed event");
    assert!(removed.contains("\"by\":\"receiver\""), "{removed}");
    assert!(!dir.path().join("webhooks/parks.portal.json").exists());
}
