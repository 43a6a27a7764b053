//! Tamper-evident history against a real nats-server: signed checkpoints, verification
//! naming each kind of tampering, offline-verifiable exports, point-in-time rebuilds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::TimeZone;
use common::Bus;
use ed25519_dalek::SigningKey;
use lienthong_audit::export::{export, verify_export, ExportFilter};
use lienthong_audit::verify::{checkpoints_from_audit, StreamReport};
use lienthong_audit::{verify_stream, Checkpoint, Tampering};
use lienthong_bus::{Classification, EventDraft, EventType};
use lienthong_replay::audit_writer::AuditWriter;
use lienthong_replay::store::PointInTime;
use lienthong_replay::ReadStore;
use serde_json::json;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn report(id: usize, day: u32) -> EventDraft {
    let rid = format!("PT-2023-{id:06}");
    let ward = ["phu-thuy", "mui-ne", "lac-dao"][id % 3];
    EventDraft::new(
        EventType::new("field_reports", "report", "submitted"),
        format!("report/{rid}/submitted"),
        rid.clone(),
        chrono::Utc
            .with_ymd_and_hms(2023, 1 + (day / 28) % 12, 1 + day % 28, 2, 0, 0)
            .unwrap(),
        json!({"report_id": rid, "category": "CSDT", "category_name": "Chiếu sáng đô thị", "ward": ward,
            "status": "open", "description": format!("Đèn hỏng số {id}"), "requested_at": "2023-01-01T09:00:00+07:00"}),
        Classification::Public,
    )
}

/// A bus with `n` field reports (one every ~12 days of 2023) and signed checkpoints of them.
async fn history(n: usize) -> Bus {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", "urn:test:fr").await;
    for r in p
        .publish_many((0..n).map(|i| report(i, (i * 12) as u32)).collect())
        .await
    {
        r.unwrap();
    }
    let writer = AuditWriter::new(bus.js("replay").await, bus.registry.clone(), key())
        .with_cadence(10, Duration::from_millis(200));
    let written = writer.checkpoint_all().await.unwrap();
    assert_eq!(written.len(), n.div_ceil(10));
    bus
}

/// The verification names `tampering` at the first bad sequence `seq`.
fn assert_found(r: &StreamReport, tampering: Tampering, seq: u64) {
    assert_eq!(
        (r.tampering, r.first_bad_seq),
        (Some(tampering), Some(seq)),
        "{r}"
    );
}

async fn verify(bus: &Bus, stream: &str) -> StreamReport {
    let js = bus.reader("auditor").await;
    let cps = checkpoints_from_audit(&js, stream).await.unwrap();
    verify_stream(&js, stream, cps, &key().verifying_key(), &|_, _| {})
        .await
        .unwrap()
}

/// Deletes `stream`, provisions it again empty and publishes its messages back, after
/// `edit` (an operator rewriting history).
async fn recreate(bus: &Bus, stream: &str, edit: impl FnOnce(&mut Vec<common::Raw>)) {
    common::recreate_stream(&bus.js("operator").await, stream, edit).await;
}

#[tokio::test]
async fn an_untouched_history_verifies() {
    let bus = history(25).await;
    for stream in lienthong_bus::registry::audited_streams() {
        let r = verify(&bus, stream).await;
        assert!(r.intact(), "{r}");
    }
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_eq!((r.checkpoints, r.covered_to, r.stream_last), (3, 25, 25));
    // Newer messages are reported as awaiting a checkpoint, not as tampering.
    bus.publisher("adapter-field_reports", "urn:test:fr")
        .await
        .publish(report(99, 3))
        .await
        .unwrap();
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert!(r.intact() && r.stream_last == 26, "{r}");
    assert!(
        r.to_string()
            .contains("1 newer message(s) await a checkpoint"),
        "{r}"
    );
}

#[tokio::test]
async fn a_stream_recreated_with_one_event_altered_is_named() {
    let bus = history(25).await;
    recreate(&bus, "FIELD_REPORTS", |raw| {
        let text = String::from_utf8(raw[16].2.to_vec())
            .unwrap()
            .replace("Đèn hỏng số 16", "Đèn đã sửa");
        raw[16].2 = text.into();
    })
    .await;
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_eq!(r.tampering, Some(Tampering::Altered), "{r}");
    assert_eq!(r.first_bad_seq, Some(17));
    assert!(
        r.detail
            .as_ref()
            .unwrap()
            .contains("the stream was created"),
        "the recreation is named: {r}"
    );
    // The other streams are unaffected.
    assert!(verify(&bus, "SSO").await.intact());
}

#[tokio::test]
async fn a_missing_message_and_a_reordering_are_named() {
    let bus = history(25).await;
    recreate(&bus, "FIELD_REPORTS", |raw| {
        raw.remove(7);
    })
    .await;
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_found(&r, Tampering::Missing, 8);

    let bus = history(25).await;
    recreate(&bus, "FIELD_REPORTS", |raw| raw.swap(11, 12)).await;
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_found(&r, Tampering::Reordered, 12);

    // Re-storing the very same history is still a recreated stream.
    let bus = history(5).await;
    recreate(&bus, "FIELD_REPORTS", |_| {}).await;
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_found(&r, Tampering::StreamRecreated, 1);
}

async fn publish_checkpoint(bus: &Bus, c: &Checkpoint) {
    // Written straight into AUDIT, as someone with operator access could.
    let registry = bus.registry.clone();
    let p =
        lienthong_bus::Publisher::new(bus.js("operator").await, registry, "urn:lienthong:audit");
    p.publish(EventDraft::new(
        EventType::new("audit", "checkpoint", "signed"),
        format!(
            "forged/{}/{}",
            c.stream,
            c.signature.len() + c.head.len() + c.first_seq as usize
        ),
        c.stream.clone(),
        chrono::Utc::now(),
        serde_json::to_value(c).unwrap(),
        Classification::Public,
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_forged_checkpoint_and_one_signed_with_another_key_are_named() {
    let bus = history(15).await;
    let js = bus.reader("auditor").await;
    let real = checkpoints_from_audit(&js, "FIELD_REPORTS").await.unwrap();

    // Forged: the head and entries of the second checkpoint rewritten, the signature kept.
    let mut forged = real[1].clone();
    forged.head = "0".repeat(64);
    publish_checkpoint(&bus, &forged).await;
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_found(&r, Tampering::CheckpointSignatureInvalid, 11);

    // Signed properly, but with a key that is not the published audit key.
    let bus = history(15).await;
    let real = checkpoints_from_audit(&bus.reader("auditor").await, "SSO")
        .await
        .unwrap();
    assert!(real.is_empty());
    let c = Checkpoint::sign(
        &SigningKey::from_bytes(&[7; 32]),
        "FIELD_REPORTS",
        "x",
        16,
        [0; 32],
        &[lienthong_audit::chain::Entry::ABSENT],
    );
    publish_checkpoint(&bus, &c).await;
    let r = verify(&bus, "FIELD_REPORTS").await;
    assert_found(&r, Tampering::CheckpointUnknownKey, 16);
}

#[tokio::test]
async fn an_export_verifies_offline_and_an_edited_one_does_not() {
    let bus = history(25).await;
    let js = bus.reader("auditor").await;
    let cps = checkpoints_from_audit(&js, "FIELD_REPORTS").await.unwrap();
    let filter = ExportFilter {
        subject: Some("egov.field_reports.report.*.submitted".into()),
        ..Default::default()
    };
    let mut out = Vec::new();
    let summary = export(
        &js,
        "FIELD_REPORTS",
        &filter,
        &cps,
        &mut out,
        None,
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.events, summary.checkpoints, summary.uncovered),
        (25, 3, 0)
    );
    let text = String::from_utf8(out).unwrap();
    drop(bus); // No NATS from here on.

    let r = verify_export(&text, &key().verifying_key());
    assert_eq!((r.verified, r.tampering), (25, None), "{r:?}");
    // Someone edits one event in the file (sequence 5's description).
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["kind"] == "event" && v["seq"] == 5 {
                let payload = STANDARD
                    .decode(v["payload_base64"].as_str().unwrap())
                    .unwrap();
                let changed = String::from_utf8(payload)
                    .unwrap()
                    .replace("Đèn hỏng số 4", "Đèn đã sửa");
                v["payload_base64"] = json!(STANDARD.encode(changed));
            }
            v.to_string()
        })
        .collect();
    let edited = edited.join("\n");
    let r = verify_export(&edited, &key().verifying_key());
    assert_eq!(
        (r.tampering, r.first_bad_seq),
        (Some(Tampering::Altered), Some(5)),
        "{r:?}"
    );
    // And with another key, nothing verifies.
    let r = verify_export(&text, &SigningKey::from_bytes(&[1; 32]).verifying_key());
    assert_eq!(r.tampering, Some(Tampering::CheckpointUnknownKey));
}

/// Every key and value of a projection's served tree, without stream positions.
fn dump(store: &ReadStore, projection: &str) -> BTreeMap<Vec<u8>, serde_json::Value> {
    store
        .current(projection)
        .unwrap()
        .iter()
        .map(|kv| kv.unwrap())
        .filter(|(k, _)| !k.starts_with(b"\0"))
        .map(|(k, v)| {
            let mut v: serde_json::Value =
                serde_json::from_slice(&v).unwrap_or(json!(hex::encode(&v)));
            if let Some(o) = v.as_object_mut() {
                o.remove("last_sequence");
            }
            (k.to_vec(), v)
        })
        .collect()
}

/// Stores the same messages (subject, headers, payload) on another bus, in order.
async fn store_copies<'a>(
    bus: &Bus,
    msgs: impl IntoIterator<Item = &'a async_nats::jetstream::Message>,
) {
    let op = bus.js("operator").await;
    for m in msgs {
        op.publish_with_headers(
            m.subject.to_string(),
            m.headers.clone().unwrap(),
            m.payload.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_point_in_time_rebuild_equals_a_rebuild_of_exactly_those_events() {
    let bus = history(30).await;
    let all = common::read_stream(&bus.js("operator").await, "FIELD_REPORTS").await;
    let as_of = chrono::DateTime::parse_from_rfc3339("2023-06-30T23:59:59+07:00")
        .unwrap()
        .to_utc();

    // The same events, those up to the moment only, on a bus of their own.
    let only = Bus::start().await;
    let kept: Vec<&async_nats::jetstream::Message> = all
        .iter()
        .filter(|m| {
            let ev = lienthong_bus::subscriber::decode_message(m, None).unwrap();
            *lienthong_bus::cloudevents::AttributesReader::time(&ev.event).unwrap() <= as_of
        })
        .collect();
    assert!(kept.len() > 5 && kept.len() < 30, "{}", kept.len());
    store_copies(&only, kept).await;
    let (at, _) = bus
        .rebuild(PointInTime {
            as_of: Some(as_of),
            until_seq: None,
        })
        .await;
    let (exact, _) = only.rebuild(PointInTime::default()).await;
    assert_eq!(dump(&at, "field_reports"), dump(&exact, "field_reports"));
    assert_eq!(
        at.point_in_time("field_reports").unwrap().unwrap(),
        format!("as_of={}", as_of.to_rfc3339())
    );

    // Up to a sequence: the first 12 events, stream positions included.
    let first = Bus::start().await;
    store_copies(&first, &all[..12]).await;
    let (at, _) = bus
        .rebuild(PointInTime {
            as_of: None,
            until_seq: Some(12),
        })
        .await;
    let (exact, _) = first.rebuild(PointInTime::default()).await;
    // Every key, but the creation time of the (different) stream each was folded from.
    let raw = |s: &ReadStore| {
        s.current("field_reports")
            .unwrap()
            .iter()
            .map(|kv| kv.unwrap())
            .filter(|(k, _)| k.as_ref() != lienthong_replay::guard::STREAM_CREATED_KEY)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(raw(&at), raw(&exact));
}

#[tokio::test]
async fn a_v1_event_replays_through_its_upcaster() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", "urn:test:fr").await;
    // Recorded years ago, before version 2: no ward name.
    let mut old = report(1, 5);
    old.schema_version = Some(1);
    p.publish(old).await.unwrap();
    // Today's adapter writes version 2.
    let mut new = report(2, 6);
    new.data["ward_name"] = json!("Phường Lạc Đạo");
    p.publish(new).await.unwrap();
    let msgs = bus.read_all("auditor", "FIELD_REPORTS").await;
    let schema = |i: usize| {
        lienthong_bus::envelope::dataschema(
            &lienthong_bus::subscriber::decode_stored(&msgs[i], Some(&bus.registry))
                .unwrap()
                .event,
        )
        .unwrap()
    };
    assert!(schema(0).ends_with("/report.submitted/v1.json"));
    assert!(schema(1).ends_with("/report.submitted/v2.json"));

    let (store, _) = bus.rebuild(PointInTime::default()).await;
    let tree = store.current("field_reports").unwrap();
    let view = lienthong_replay::field_reports::FieldReportsView { tree: &tree };
    assert_eq!(
        view.get("PT-2023-000001")
            .unwrap()
            .unwrap()
            .ward_name
            .as_deref(),
        Some("Phường Mũi Né"),
        "upcast from the v1 slug"
    );
    assert_eq!(
        view.get("PT-2023-000002")
            .unwrap()
            .unwrap()
            .ward_name
            .as_deref(),
        Some("Phường Lạc Đạo")
    );
}

#[tokio::test]
async fn a_live_rebuild_swaps_while_the_service_keeps_answering() {
    let bus = history(30).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let options = lienthong_replay::service::ServeOptions {
        admin_token: Some("admin-token".into()),
        ..Default::default()
    };
    tokio::spawn(lienthong_replay::service::serve(
        lienthong_bus::tls::http::Listener::plain(listener).unwrap(),
        Some(bus.js("replay").await),
        bus.registry.clone(),
        ReadStore::temporary().unwrap(),
        options,
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let total = |http: reqwest::Client| {
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}/api/v1/field-reports/stats"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "the service answers throughout");
            r.json::<serde_json::Value>().await.unwrap()["total"]
                .as_u64()
                .unwrap()
        }
    };
    let tree = |http: reqwest::Client| {
        let base = base.clone();
        async move {
            let h: serde_json::Value = common::get_json(&http, format!("{base}/healthz")).await;
            h["projections"]["field_reports"]["tree"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    for _ in 0..100 {
        if total(http.clone()).await == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tree(http.clone()).await, "field_reports@1");

    let r = http
        .post(format!("{base}/api/v1/admin/rebuild"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!(
            "{base}/api/v1/admin/rebuild?projection=field_reports"
        ))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut swapped = false;
    for _ in 0..200 {
        assert_eq!(total(http.clone()).await, 30);
        if tree(http.clone()).await == "field_reports@2" {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(swapped, "the rebuilt generation is served");
    // The live consumer continues on the new generation, from its own checkpoint.
    bus.publisher("adapter-field_reports", "urn:test:fr")
        .await
        .publish(report(77, 100))
        .await
        .unwrap();
    let mut now = 0;
    for _ in 0..100 {
        now = total(http.clone()).await;
        if now == 31 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, 31);
}

#[tokio::test]
async fn a_history_rewritten_and_signed_again_centrally_is_caught_by_a_kept_copy() {
    let bus = history(25).await;
    // The auditor keeps the checkpoints outside the system (as `audit checkpoints --out`).
    let witness = tempfile::tempdir().unwrap();
    let reader = bus.reader("auditor").await;
    let kept = checkpoints_from_audit(&reader, "FIELD_REPORTS")
        .await
        .unwrap();
    let lines: String = kept
        .iter()
        .map(|c| serde_json::to_string(c).unwrap() + "\n")
        .collect();
    std::fs::write(
        witness.path().join("FIELD_REPORTS.checkpoints.jsonl"),
        lines,
    )
    .unwrap();

    // An operator who also holds the signing key rewrites one event, replaces AUDIT and signs
    // the rewritten history again.
    recreate(&bus, "FIELD_REPORTS", |raw| {
        let text = String::from_utf8(raw[16].2.to_vec())
            .unwrap()
            .replace("Đèn hỏng số 16", "Đèn đã sửa");
        raw[16].2 = text.into();
    })
    .await;
    let js = bus.js("operator").await;
    js.delete_stream("AUDIT").await.unwrap();
    lienthong_bus::provision(&js).await.unwrap();
    AuditWriter::new(bus.js("replay").await, bus.registry.clone(), key())
        .with_cadence(10, Duration::from_millis(200))
        .checkpoint_all()
        .await
        .unwrap();

    // Centrally, nothing shows: the forged checkpoints verify.
    let central = verify(&bus, "FIELD_REPORTS").await;
    assert!(central.intact(), "{central}");
    // Against the kept copy, the rewrite is found and located.
    let copy =
        lienthong_audit::verify::checkpoints_from_files(witness.path(), "FIELD_REPORTS").unwrap();
    assert_eq!(copy.len(), kept.len());
    let r = verify_stream(
        &reader,
        "FIELD_REPORTS",
        copy,
        &key().verifying_key(),
        &|_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(r.tampering, Some(Tampering::Altered), "{r}");
    assert_eq!(r.first_bad_seq, Some(17), "{r}");
}

/// A standby promoted after the centre was lost may hold a stream only up to an earlier
/// sequence than the centre's last checkpoints cover (they reached it, the last events did
/// not). Here the stream is put back from a snapshot taken at 6 messages after checkpoints
/// covered 10: the signed resumption lets the chain go on after 6, and verification says what
/// was lost instead of calling the new events tampering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_resumes_after_a_promotion_that_holds_less_than_was_checkpointed() {
    let bus = Bus::start().await;
    let p = bus.publisher("adapter-field_reports", "urn:test:fr").await;
    for i in 0..6 {
        p.publish(report(i, i as u32)).await.unwrap();
    }
    let operator = bus.client("operator").await;
    let mut archive = Vec::new();
    let taken =
        lienthong_bus::snapshot::take(&operator, "$JS.API", "FIELD_REPORTS", &mut archive, &|_| {})
            .await
            .unwrap();
    for i in 6..10 {
        p.publish(report(i, i as u32)).await.unwrap();
    }
    let writer = AuditWriter::new(bus.js("replay").await, bus.registry.clone(), key())
        .with_cadence(4, Duration::from_millis(200));
    writer.checkpoint_all().await.unwrap();
    assert!(verify(&bus, "FIELD_REPORTS").await.intact());

    // What reached the standby: the first 6, with their sequences and store times.
    bus.js("operator")
        .await
        .delete_stream("FIELD_REPORTS")
        .await
        .unwrap();
    lienthong_bus::snapshot::restore(
        &operator,
        "$JS.API",
        &taken.config,
        &taken.state,
        &mut archive.as_slice(),
        &|_| {},
    )
    .await
    .unwrap();
    let before = verify(&bus, "FIELD_REPORTS").await;
    assert_eq!(before.tampering, Some(Tampering::Missing), "{before}");

    let r = writer
        .resume_after_loss("FIELD_REPORTS", "standby du-phong promoted to centre")
        .await
        .unwrap()
        .expect("a resumption");
    assert_eq!((r.first_seq, r.last_seq), (7, 6));
    assert_eq!(r.resumes.as_ref().unwrap().lost_to, 10);
    // Nothing more to resume: the chain now goes on after 6.
    assert!(writer
        .resume_after_loss("FIELD_REPORTS", "again")
        .await
        .unwrap()
        .is_none());
    for i in 100..107 {
        p.publish(report(i, i as u32)).await.unwrap();
    }
    let written = writer.checkpoint_all().await.unwrap();
    assert_eq!(written.first().map(|c| c.first_seq), Some(7));
    let after = verify(&bus, "FIELD_REPORTS").await;
    assert!(after.intact(), "{after}");
    assert_eq!(after.covered_to, 13);
    assert!(
        after.resumed.len() == 1
            && after.resumed[0].contains("sequences 7..=10 were recorded and are not held")
            && after.resumed[0].contains("standby du-phong"),
        "{after}"
    );
    assert!(
        after.to_string().contains("RESUMED after a loss"),
        "{after}"
    );
}
