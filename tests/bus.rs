//! The bus core against a real nats-server: publishing, deduplication, dead letters,
//! optimistic concurrency, provisioning, binary-mode reading.

mod common;

use chrono::TimeZone;
use common::Bus;
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::subscriber::decode_stored;
use lienthong_bus::{BusError, Classification, DeadLetter, EventDraft, EventType, Provisioned};
use serde_json::json;

const SOURCE: &str = "urn:lienthong:test:field_reports";

fn submitted(id: &str, ward: &str) -> EventDraft {
    EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("report/{id}/submitted"),
        id.to_string(),
        chrono::Utc
            .with_ymd_and_hms(2023, 11, 18, 12, 42, 10)
            .unwrap(),
        json!({
            "report_id": id,
            "category": "CSDT",
            "category_name": "Chiếu sáng đô thị",
            "ward": ward,
            "status": "open",
            "description": "Đèn đường hỏng",
            "requested_at": "2023-11-18T19:42:10+07:00",
        }),
        Classification::Public,
    )
}

#[tokio::test]
async fn same_record_published_twice_is_stored_once() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    let first = p
        .publish(submitted("PT.2023/1003 >", "tien-thanh"))
        .await
        .unwrap();
    let second = p
        .publish(submitted("PT.2023/1003 >", "tien-thanh"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.sequence, second.sequence);
    assert_eq!(
        first.subject,
        "egov.field_reports.report.PT~2E2023~2F1003~20~3E.submitted"
    );
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    assert_eq!(msgs.len(), 1);
    let ev = decode_stored(&msgs[0], Some(&bus.registry)).unwrap();
    assert_eq!(ev.event.subject(), Some("PT.2023/1003 >"));
    assert_eq!(
        msgs[0].headers.get("Content-Type").unwrap().as_str(),
        "application/cloudevents+json"
    );
}

#[tokio::test]
async fn invalid_data_goes_to_the_dlq_with_every_reason_and_not_to_the_stream() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    let mut bad = submitted("PT-1", "quan-1");
    bad.data["requested_at"] = json!("18/11/2023");
    bad.data["phone"] = json!("0905123456");
    let err = p.publish(bad).await.unwrap_err();
    let BusError::Invalid {
        violations,
        dead_letter,
        ..
    } = err
    else {
        panic!("expected Invalid, got {err:?}")
    };
    let pointers: Vec<_> = violations.iter().map(|v| v.pointer.as_str()).collect();
    assert!(pointers.contains(&"/ward"), "{pointers:?}");
    assert!(pointers.contains(&"/requested_at"), "{pointers:?}");
    assert!(
        pointers.contains(&""),
        "additional property reported at the root: {pointers:?}"
    );
    assert!(dead_letter.is_some());

    assert!(bus.read_all("auditor", "FIELD_REPORTS").await.is_empty());
    let dlq = bus.read_all("auditor", "DLQ").await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].subject.as_str(),
        "egov.dlq.field_reports.report~2FPT-1~2Fsubmitted.rejected"
    );
    let ev = decode_stored(&dlq[0], Some(&bus.registry)).unwrap();
    let letter = DeadLetter::from_event(&ev.event).unwrap();
    assert_eq!(letter.reason, "schema_violation");
    assert_eq!(letter.violations.len(), violations.len());
    assert_eq!(letter.original_source, SOURCE);
    let original = letter.original_event().unwrap();
    assert_eq!(original.id(), "report/PT-1/submitted");
}

#[tokio::test]
async fn optimistic_concurrency_per_aggregate() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    let mut first = submitted("PT-9", "mui-ne");
    first.expected_last_subject_sequence = Some(0);
    let a = p.publish(first).await.unwrap();

    let mut change = submitted("PT-9", "mui-ne");
    change.event_type = EventType::new("field_reports", "report", "status_changed");
    change.id = "report/PT-9/update/U-1".into();
    change.data = json!({"report_id": "PT-9", "status": "in_progress", "previous_status": "open",
        "changed_at": "2023-11-19T08:00:00+07:00", "origin": "update", "update_id": "U-1"});
    change.expected_last_subject_sequence = Some(a.sequence);
    p.publish(change.clone()).await.unwrap();

    // Another writer still believes the aggregate is at `a.sequence`.
    change.id = "report/PT-9/update/U-2".into();
    let err = p.publish(change.clone()).await.unwrap_err();
    assert!(
        matches!(err, BusError::Conflict { ref filter, expected } if filter == "egov.field_reports.report.PT-9.>" && expected == a.sequence),
        "{err:?}"
    );
    // The same in a pipeline (adapters' pages, the ingress's batches): the server's answer
    // is a conflict, reported as one beside the events that are stored.
    change.id = "report/PT-9/update/U-3".into();
    let before = bus.messages("FIELD_REPORTS").await;
    let results = p
        .publish_pipelined([change, submitted("PT-11", "mui-ne")], 8)
        .await;
    assert!(
        matches!(&results[0], Err(BusError::Conflict { expected, .. }) if *expected == a.sequence),
        "{:?}",
        results[0]
    );
    assert!(results[1].is_ok());
    assert_eq!(bus.messages("FIELD_REPORTS").await, before + 1);
    // An event of another aggregate is not affected.
    let mut other = submitted("PT-10", "mui-ne");
    other.expected_last_subject_sequence = Some(0);
    p.publish(other).await.unwrap();
}

#[tokio::test]
async fn provisioning_is_idempotent_and_refuses_silent_changes() {
    let bus = Bus::start().await;
    let js = bus.js("operator").await;
    let again = lienthong_bus::provision(&js).await.unwrap();
    assert!(
        again.iter().all(|p| matches!(p, Provisioned::Unchanged(_))),
        "{again:?}"
    );

    // A changed duplicate window may be brought back in line: it is updated, and said so.
    let mut cfg = spec("OPEN_DATA").config();
    cfg.duplicate_window = std::time::Duration::from_secs(60);
    js.update_stream(cfg).await.unwrap();
    let fixed = lienthong_bus::provision(&js).await.unwrap();
    assert!(
        fixed.iter().any(|p| matches!(p, Provisioned::Updated { name, changes } if name == "OPEN_DATA" && changes[0].contains("duplicate_window"))),
        "{fixed:?}"
    );

    // Someone gave SSO an age limit by hand: provisioning must refuse, naming it.
    let mut cfg = spec("SSO").config();
    cfg.max_age = std::time::Duration::from_secs(86400);
    js.update_stream(cfg).await.unwrap();
    let err = lienthong_bus::provision(&js).await.unwrap_err();
    let BusError::Topology {
        stream,
        differences,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(stream, "SSO");
    assert!(differences[0].contains("max_age"), "{differences:?}");
    assert!(err.to_string().contains("will not change these silently"));
    let info = js
        .get_stream("SSO")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(
        info.max_age,
        std::time::Duration::from_secs(86400),
        "left as found"
    );
}

#[tokio::test]
async fn readers_accept_binary_mode() {
    let bus = Bus::start().await;
    let client = bus.client("operator").await;
    let js = async_nats::jetstream::new(client);
    let mut h = async_nats::HeaderMap::new();
    h.insert("ce-specversion", "1.0");
    h.insert("ce-id", "bin-1");
    h.insert("ce-source", "urn:lienthong:test:binary");
    h.insert("ce-type", "vn.egov.field_reports.report.submitted");
    h.insert("ce-subject", "PT%2D7");
    h.insert("ce-time", "2023-11-18T12:42:10Z");
    h.insert(
        "ce-dataschema",
        "https://lienthong.vn/schemas/field_reports/report.submitted/v1.json",
    );
    h.insert("Content-Type", "application/json");
    let data = submitted("PT-7", "phu-hai").data.to_string();
    js.publish_with_headers("egov.field_reports.report.PT-7.submitted", h, data.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    let ev = decode_stored(&msgs[0], Some(&bus.registry)).unwrap();
    assert_eq!(ev.event.id(), "bin-1");
    assert_eq!(ev.event.subject(), Some("PT-7"));

    // The replay folds it too (binary mode takes the full decoder, structured the fast path).
    let (store, metrics) = bus.rebuild(Default::default()).await;
    let tree = store.current("field_reports").unwrap();
    let view = lienthong_replay::field_reports::FieldReportsView { tree: &tree };
    assert_eq!(view.get("PT-7").unwrap().unwrap().ward, "phu-hai");
    assert_eq!(
        metrics.skipped.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn bulk_import_commits_atomic_batches_and_keeps_the_invalid_in_the_dlq() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    let mut drafts: Vec<EventDraft> = (0..2_500)
        .map(|i| submitted(&format!("PT-2023-{i:06}"), "tien-thanh"))
        .collect();
    drafts[1_234].data["ward"] = json!("atlantis");
    let results = p.publish_batched(drafts.clone(), 1_000).await;
    assert_eq!(results.len(), 2_500);
    match &results[1_234] {
        Err(BusError::Invalid {
            violations,
            dead_letter: Some(_),
            ..
        }) => assert!(violations.iter().any(|v| v.pointer == "/ward")),
        other => panic!("expected the invalid event in the DLQ, got {other:?}"),
    }
    let stored: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1_234)
        .map(|(_, r)| r.as_ref().expect("valid events are stored"))
        .collect();
    // In input order, one sequence each, no gap: 2,499 events in three batches.
    let seqs: Vec<u64> = stored.iter().map(|s| s.sequence).collect();
    assert_eq!(seqs, (1..=2_499).collect::<Vec<u64>>());
    assert_eq!(bus.messages("FIELD_REPORTS").await, 2_499);
    assert_eq!(bus.messages("DLQ").await, 1);
    // Each reported sequence holds the event it names.
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    for (s, m) in stored.iter().zip(&msgs) {
        let ev = decode_stored(m, Some(&bus.registry)).unwrap();
        assert_eq!(ev.event.id(), s.id);
        assert_eq!(m.sequence, s.sequence);
    }
    let batches: std::collections::BTreeSet<String> = msgs
        .iter()
        .map(|m| m.headers.get("Nats-Batch-Id").unwrap().to_string())
        .collect();
    assert_eq!(
        batches.len(),
        3,
        "2,499 events commit in three atomic batches"
    );

    // The same import again (a backfill re-run after a crash) stores nothing twice.
    drafts[1_234].data["ward"] = json!("tien-thanh");
    let again = p.publish_batched(drafts, 1_000).await;
    for r in &again {
        r.as_ref().expect("stored or already stored");
    }
    let duplicates = again
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|p| p.duplicate))
        .count();
    assert_eq!(
        duplicates, 2_499,
        "the server refuses batches with stored ids; they go one by one"
    );
    assert_eq!(bus.messages("FIELD_REPORTS").await, 2_500);
}

#[tokio::test]
async fn an_expectation_in_a_bulk_import_is_checked_after_what_came_before() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    // Two writers' worth in one import: both believe PT-1 is new.
    let mut drafts: Vec<EventDraft> = (0..5)
        .map(|i| submitted(&format!("PT-{i}"), "mui-ne"))
        .collect();
    drafts[1].expected_last_subject_sequence = Some(0);
    let mut again = submitted("PT-1", "mui-ne");
    again.id = "report/PT-1/submitted-again".into();
    again.expected_last_subject_sequence = Some(0);
    drafts.push(again);
    let results = p.publish_batched(drafts, 100).await;
    // The server would check both against the stream before the batch (and store both);
    // events with an expectation go alone, so the second one conflicts.
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            assert!(
                matches!(r, Err(BusError::Conflict { expected: 0, .. })),
                "{r:?}"
            );
        } else {
            assert!(r.as_ref().is_ok_and(|p| !p.duplicate), "{i}: {r:?}");
        }
    }
    assert_eq!(bus.messages("FIELD_REPORTS").await, 5);
}

#[tokio::test]
async fn durable_mode_stores_atomic_batches() {
    let bus = Bus::start_with(true).await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    let drafts: Vec<EventDraft> = (0..300)
        .map(|i| submitted(&format!("PT-2023-{i:06}"), "tien-thanh"))
        .collect();
    for r in p.publish_batched(drafts, 100).await {
        assert!(!r.unwrap().duplicate);
    }
    assert_eq!(bus.messages("FIELD_REPORTS").await, 300);
}

fn spec(name: &str) -> lienthong_bus::topology::StreamSpec {
    lienthong_bus::topology::streams()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

#[tokio::test]
async fn pipelined_publishing_reports_every_event_in_order_and_keeps_the_invalid_in_the_dlq() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", SOURCE).await;
    let mut drafts: Vec<EventDraft> = (0..3_000)
        .map(|i| submitted(&format!("PT-2023-{i:06}"), "tien-thanh"))
        .collect();
    drafts[777].data["ward"] = json!("atlantis");
    // The same record twice: stored once, the second reported as a duplicate.
    drafts.push(drafts[10].clone());
    let results = p.publish_pipelined(drafts, 64).await;
    assert_eq!(results.len(), 3_001);
    assert!(matches!(
        &results[777],
        Err(BusError::Invalid {
            dead_letter: Some(_),
            ..
        })
    ));
    let dup = results[3_000].as_ref().unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.sequence, results[10].as_ref().unwrap().sequence);
    let mut seqs: Vec<u64> = results[..3_000]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 777)
        .map(|(_, r)| r.as_ref().expect("valid events are stored").sequence)
        .collect();
    seqs.sort();
    assert_eq!(seqs, (1..=2_999).collect::<Vec<u64>>());
    assert_eq!(bus.messages("FIELD_REPORTS").await, 2_999);
    assert_eq!(bus.messages("DLQ").await, 1);
    // Each reported sequence holds the event it names.
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    for r in results.iter().flatten() {
        let m = &msgs[(r.sequence - 1) as usize];
        assert_eq!(decode_stored(m, None).unwrap().event.id(), r.id);
    }
}

#[tokio::test]
async fn pipelined_publishing_the_server_refuses_fails_at_once() {
    let bus = Bus::start().await;
    // The meetings adapter may not publish field reports: the server refuses those
    // publishes (no acknowledgement will come), not the meetings events beside them.
    let (client, refusals) = bus
        .creds
        .settings("adapter-meetings", &bus.server.url())
        .unwrap()
        .connect_watched("test-refused")
        .await
        .unwrap();
    let p = lienthong_bus::Publisher::new(
        async_nats::jetstream::new(client),
        bus.registry.clone(),
        SOURCE,
    )
    .with_refusals(refusals);
    let start = std::time::Instant::now();
    let results = p
        .publish_pipelined(
            (0..200).map(|i| submitted(&format!("PT-R-{i}"), "tien-thanh")),
            64,
        )
        .await;
    assert_eq!(results.len(), 200);
    for r in &results {
        match r {
            Err(BusError::Forbidden { .. }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(
        start.elapsed() < lienthong_bus::publisher::PIPELINE_ACK_TIMEOUT,
        "refusals fail at once, not after the acknowledgement timeout: {:?}",
        start.elapsed()
    );
    assert_eq!(bus.messages("FIELD_REPORTS").await, 0);
}

#[tokio::test]
async fn pipelined_publishing_without_a_stream_waits_and_retries_then_says_so() {
    let bus = Bus::start().await;
    let js = bus.js("operator").await;
    js.delete_stream("FIELD_REPORTS").await.unwrap();
    let p = bus
        .publisher("adapter-field_reports", SOURCE)
        .await
        .with_retry(lienthong_bus::RetryPolicy {
            attempts: 2,
            first_backoff: std::time::Duration::from_millis(50),
            ..Default::default()
        });
    let results = p
        .publish_pipelined(
            (0..3).map(|i| submitted(&format!("PT-X-{i}"), "tien-thanh")),
            8,
        )
        .await;
    assert_eq!(results.len(), 3);
    for r in &results {
        let e = r.as_ref().unwrap_err().to_string();
        assert!(e.contains("no stream answered"), "{e}");
    }
}
