//! The subscriber helper and the publisher's retries, against a real nats-server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeZone;
use common::Bus;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::{
    BusError, Classification, EventDraft, EventType, NatsServer, Publisher, RetryPolicy,
    SchemaRegistry, Subscriber,
};
use serde_json::json;

fn submitted(id: &str) -> EventDraft {
    EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("report/{id}/submitted"),
        id.to_string(),
        chrono::Utc.with_ymd_and_hms(2023, 5, 1, 1, 0, 0).unwrap(),
        json!({"report_id": id, "category": "VSMT", "category_name": "Vệ sinh môi trường",
            "ward": "xuan-an", "status": "open", "description": null, "requested_at": "2023-05-01T08:00:00+07:00"}),
        Classification::Public,
    )
}

#[tokio::test]
async fn a_durable_subscriber_acks_only_after_the_handler_succeeded() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", "urn:test:fr").await;
    for id in ["A", "B", "C"] {
        p.publish(submitted(id)).await.unwrap();
    }
    // Something that is not a valid event, written by the operator straight to the stream.
    bus.js("operator")
        .await
        .publish(
            "egov.field_reports.report.Z.submitted",
            "not an event".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    // An agency, reading its copy of the stream from its own account.
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    let files = agencies
        .admin
        .add(
            "urban",
            lienthong_bus::agencies::grants(&["FIELD_REPORTS".into()], &[]).unwrap(),
            None,
        )
        .await
        .unwrap();
    let (client, refusals) = bus.connect_env(&files.agency).await;
    let reader = lienthong_bus::StreamReader::new(client.clone(), refusals);
    while reader
        .state("FIELD_REPORTS")
        .await
        .map(|s| s.messages)
        .unwrap_or(0)
        < 4
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let js = async_nats::jetstream::new(client);
    let sub = Subscriber::durable(
        &js,
        "FIELD_REPORTS",
        "agency-urban",
        vec!["egov.field_reports.>".into()],
        bus.registry.clone(),
    )
    .await
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed_once = Arc::new(Mutex::new(false));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let done_tx = Arc::new(Mutex::new(Some(done_tx)));
    let (s, f, d) = (seen.clone(), failed_once.clone(), done_tx.clone());
    let run = tokio::spawn(async move {
        sub.run(
            move |ev| {
                let (s, f, d) = (s.clone(), f.clone(), d.clone());
                async move {
                    let key = ev.event.subject().unwrap().to_string();
                    // The handler fails the first time it sees B: B must come again.
                    if key == "B" && !std::mem::replace(&mut *f.lock().unwrap(), true) {
                        return Err("database down");
                    }
                    let mut s = s.lock().unwrap();
                    s.push(key);
                    if s.len() == 3 {
                        if let Some(tx) = d.lock().unwrap().take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(())
                }
            },
            async {
                let _ = done_rx.await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
        )
        .await
    });
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        ["A", "B", "C"],
        "B redelivered after its failure; Z never handed over"
    );

    // Everything was acknowledged: the durable consumer has nothing pending.
    let mut c = js
        .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
            "agency-urban",
            "FIELD_REPORTS",
        )
        .await
        .unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
}

#[tokio::test]
async fn the_publisher_retries_until_the_stream_answers_and_gives_up_when_bounded() {
    // A server where nothing is provisioned yet: publishing meets "no responders".
    let creds = lienthong_bus::CredentialSet::generate();
    let server = NatsServer::start_ephemeral(&creds)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let connect = |role: &str| {
        let s = creds.settings(role, &server.url()).unwrap();
        async move { async_nats::jetstream::new(s.connect("test").await.unwrap()) }
    };
    let registry = Arc::new(SchemaRegistry::embedded().unwrap());
    let quick = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    };
    let p = Publisher::new(
        connect("adapter-field_reports").await,
        registry.clone(),
        "urn:test:fr",
    )
    .with_retry(quick);
    let err = p.publish(submitted("A")).await.unwrap_err();
    assert!(
        matches!(err, BusError::Unavailable { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("streams provision"), "{err}");

    // With a longer budget, the stream appearing mid-retry lets the same event through once.
    let patient = RetryPolicy {
        attempts: 20,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };
    let p = Publisher::new(
        connect("adapter-field_reports").await,
        registry,
        "urn:test:fr",
    )
    .with_retry(patient);
    let operator = connect("operator").await;
    let provisioner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        lienthong_bus::provision(&operator).await.unwrap();
    });
    let stored = p.publish(submitted("A")).await.unwrap();
    provisioner.await.unwrap();
    assert_eq!(stored.sequence, 1);
    assert!(
        p.publish(submitted("A")).await.unwrap().duplicate,
        "the same id again is a duplicate"
    );
    let info = connect("operator")
        .await
        .get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(info, 1);
}
