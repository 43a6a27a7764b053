//! `nats.conf` roles against a real server: each role can do its job and nothing more.
//! Agencies, in accounts of their own, are tried in `tests/agencies.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use common::Bus;

/// Connects as `role`, recording the server's permission violations.
async fn connect(
    bus: &Bus,
    role: &str,
) -> (
    jetstream::Context,
    Arc<Mutex<Vec<String>>>,
    async_nats::Client,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let client = async_nats::ConnectOptions::with_user_and_password(
        role.to_string(),
        bus.creds.password(role).unwrap().to_string(),
    )
    .custom_inbox_prefix(format!("_INBOX.{role}"))
    .event_callback(move |event| {
        let sink = sink.clone();
        async move {
            if let async_nats::Event::ServerError(e) = event {
                sink.lock().unwrap().push(e.to_string());
            }
        }
    })
    .connect(bus.server.url())
    .await
    .unwrap();
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(800))
        .build(client.clone());
    (js, seen, client)
}

async fn violations(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    seen.lock().unwrap().clone()
}

async fn try_publish(js: &jetstream::Context, subject: &str) -> bool {
    match js.publish(subject.to_string(), "{}".into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn an_adapter_publishes_only_its_own_subsystem() {
    let bus = Bus::start().await;
    let (js, seen, _c) = connect(&bus, "adapter-field_reports").await;
    assert!(
        try_publish(&js, "egov.field_reports.report.X.submitted").await,
        "own subsystem"
    );
    assert!(
        try_publish(&js, "egov.dlq.field_reports.X.rejected").await,
        "own dead letters"
    );
    assert!(!try_publish(&js, "egov.documents.document.X.sent").await);
    assert!(!try_publish(&js, "egov.sso.session.X.started").await);
    assert!(!try_publish(&js, "egov.dlq.documents.X.rejected").await);
    assert!(!try_publish(&js, "egov.audit.checkpoint.X.signed").await);
    let v = violations(&seen).await;
    assert!(
        v.iter()
            .any(|e| e.contains("Permissions Violation") && e.contains("egov.documents")),
        "{v:?}"
    );
    assert_eq!(bus.messages("DOCUMENTS").await, 0);
    assert_eq!(bus.messages("SSO").await, 0);
    assert_eq!(bus.messages("FIELD_REPORTS").await, 1);

    // Its cursor: its own keys in ADAPTER_STATE, not another adapter's.
    let kv = js.get_key_value("ADAPTER_STATE").await.unwrap();
    kv.put("field_reports.cursor", "1".into()).await.unwrap();
    assert!(kv.put("documents.cursor", "1".into()).await.is_err());
}

#[tokio::test]
async fn the_auditor_reads_everything_and_publishes_nothing() {
    let bus = Bus::start().await;
    let (op, _, _c0) = connect(&bus, "operator").await;
    op.publish("egov.sso.session.A.started", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (js, seen, _c) = connect(&bus, "auditor").await;
    for s in lienthong_bus::registry::stream_names() {
        assert!(js.get_stream(s).await.is_ok(), "auditor reads {s}");
    }
    // It reads by direct get; it may not create a consumer (read-only, consumers included),
    // nor read the agencies' credentials bucket.
    assert_eq!(bus.read_all("auditor", "SSO").await.len(), 1);
    assert!(js
        .create_consumer_on_stream(consumer::pull::Config::default(), "SSO")
        .await
        .is_err());
    assert!(js.get_stream("KV_AGENCY_ACCESS").await.is_err());
    for s in [
        "egov.sso.session.B.started",
        "egov.field_reports.report.B.submitted",
        "egov.dlq.sso.B.rejected",
        "egov.audit.checkpoint.B.signed",
    ] {
        assert!(!try_publish(&js, s).await, "auditor must not publish {s}");
    }
    // Adapters' cursors are not the auditor's to read or write.
    assert!(js.get_key_value("ADAPTER_STATE").await.is_err());
    assert!(!try_publish(&js, "$KV.ADAPTER_STATE.sso.cursor").await);
    assert!(!violations(&seen).await.is_empty());
    assert_eq!(bus.messages("SSO").await, 1);
}

#[tokio::test]
async fn only_the_operator_creates_or_deletes_streams() {
    let bus = Bus::start().await;
    let scratch = stream::Config {
        name: "SCRATCH".into(),
        subjects: vec!["scratch.>".into()],
        ..Default::default()
    };
    for role in lienthong_bus::roles::role_names()
        .iter()
        .filter(|r| *r != "operator")
    {
        let (js, _, _c) = connect(&bus, role).await;
        assert!(
            js.create_stream(scratch.clone()).await.is_err(),
            "{role} created a stream"
        );
        assert!(
            js.delete_stream("FIELD_REPORTS").await.is_err(),
            "{role} deleted a stream"
        );
    }
    assert_eq!(bus.messages("FIELD_REPORTS").await, 0, "still there");
    let (op, _, _c) = connect(&bus, "operator").await;
    op.create_stream(scratch).await.unwrap();
    op.delete_stream("SCRATCH").await.unwrap();
}
