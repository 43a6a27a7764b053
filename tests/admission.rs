//! The hub admits what ward sites send; it does not trust it. A dishonest ward administrator
//! writes straight to the ward's own server — bypassing its ingress — events with another
//! source, the message id of a central event not published yet, invalid data, garbage, and
//! a flood: nothing of it reaches a central stream, each refusal is a dead letter with the
//! site, the reason and the digest (never the data), counted per site, and every honest
//! event, the ward's and the centre's, is stored.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::up::{free_port, json_or_null, lienthong, lienthong_status, wait_for, SiteUp, Up};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::{ConnectSettings, Publisher};
use serde_json::{json, Value};

const CENTRAL_SOURCE: &str = "urn:lienthong:phanthiet:field_reports";
/// Written into every forged event: it must not be found on any central stream.
const MARKER: &str = "FORGED-BY-THE-WARD-ADMIN";

fn report(id: &str, description: &str) -> Value {
    json!({
        "report_id": id, "category": "HTGT", "category_name": "Hạ tầng giao thông",
        "ward": "phu-thuy", "status": "open", "description": description,
        "requested_at": "2023-12-30T08:00:00+07:00"
    })
}

fn event(source: &str, id: &str, key: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
        "source": source, "id": id, "subject": key, "time": "2023-12-30T01:00:00Z",
        "datacontenttype": "application/json", "data": data,
        "dataschema": "https://lienthong.vn/schemas/field_reports/report.submitted/v1.json"
    })
}

/// Writes `body` to the ward's own server as its administrator would, on the subject of
/// report `key`, with `msg_id` as `Nats-Msg-Id` when given; waits for the ward's stream to
/// store it.
async fn write_at_ward(
    js: &async_nats::jetstream::Context,
    key: &str,
    body: String,
    msg_id: Option<&str>,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/cloudevents+json");
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    js.publish_with_headers(
        format!("egov.field_reports.report.{key}.submitted"),
        headers,
        body.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap_or_else(|e| panic!("the ward's server did not store {key}: {e}"));
}

async fn stream_ids(env: &std::path::Path, stream: &str) -> (BTreeMap<String, usize>, String) {
    let reader = lienthong_bus::StreamReader::new(
        ConnectSettings::resolve(Some(env))
            .unwrap()
            .connect("test-admission-reader")
            .await
            .unwrap(),
        Default::default(),
    );
    let mut ids = BTreeMap::new();
    let mut text = String::new();
    for m in reader.read_all(stream, None).await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&m.payload));
        if let Ok(ev) = lienthong_bus::subscriber::decode_stored(&m, None) {
            *ids.entry(ev.event.id().to_string()).or_default() += 1;
        }
    }
    (ids, text)
}

#[tokio::test]
async fn a_dishonest_ward_gets_nothing_into_the_central_streams_and_takes_no_central_id() {
    let leaf = free_port();
    let hub = Up::start(&["--leaf-port", &leaf.to_string()]);
    let http = reqwest::Client::new();
    wait_for(
        "the hub is up",
        Duration::from_secs(60),
        || async { json_or_null(&http, format!("{}/healthz", hub.base)).await["status"] == "ok" },
        || hub.log_tail(20),
    )
    .await;
    let operator = hub.credentials("operator.env");
    let op = operator.to_str().unwrap();
    // A ward named after the centre's own namespace would speak for it: refused.
    let (ok, out) = lienthong_status(&[
        "site",
        "add",
        "phanthiet",
        "--domain",
        "phanthiet",
        "--env",
        op,
    ]);
    assert!(!ok && out.contains("the centre's own namespace"), "{out}");
    lienthong(&[
        "site", "add", "phu-thuy", "--domain", "phuthuy", "--env", op,
    ]);
    let ward = SiteUp::start(&[
        "--name",
        "phu-thuy",
        "--domain",
        "phuthuy",
        "--hub",
        &format!("nats-leaf://127.0.0.1:{leaf}"),
        "--env",
        hub.credentials("site-phu-thuy.env").to_str().unwrap(),
    ]);
    let ward_operator = ward.data.join("credentials/operator.env");
    wait_for(
        "the ward site is up",
        Duration::from_secs(60),
        || async { ward.data.join("credentials/ingress-site.env").exists() },
        || ward.log_tail(20),
    )
    .await;
    let ward_js = async_nats::jetstream::new(
        ConnectSettings::resolve(Some(&ward_operator))
            .unwrap()
            .connect("test-dishonest-admin")
            .await
            .unwrap(),
    );
    let own = "urn:lienthong:phu-thuy:field_reports";

    // An honest event of the ward (its own source, its own id), written the same way.
    write_at_ward(
        &ward_js,
        "PT-W-1",
        event(own, "ward/PT-W-1", "PT-W-1", report("PT-W-1", "Ổ gà")).to_string(),
        Some(&lienthong_bus::publisher::message_id(own, "ward/PT-W-1")),
    )
    .await;
    // The ids of central events the hub has not published yet: one with the centre's
    // source, one with the ward's own source but the central message id.
    let central_id = "hub/PT-REAL-1";
    let central_msg_id = lienthong_bus::publisher::message_id(CENTRAL_SOURCE, central_id);
    write_at_ward(
        &ward_js,
        "PT-REAL-1",
        event(
            CENTRAL_SOURCE,
            central_id,
            "PT-REAL-1",
            report("PT-REAL-1", MARKER),
        )
        .to_string(),
        Some(&central_msg_id),
    )
    .await;
    let central_id_2 = "hub/PT-REAL-2";
    write_at_ward(
        &ward_js,
        "PT-REAL-2",
        event(own, "ward/steal", "PT-REAL-2", report("PT-REAL-2", MARKER)).to_string(),
        Some(&lienthong_bus::publisher::message_id(
            CENTRAL_SOURCE,
            central_id_2,
        )),
    )
    .await;
    // Another ward's source; invalid data; not a CloudEvent at all.
    write_at_ward(
        &ward_js,
        "PT-X-1",
        event(
            "urn:lienthong:mui-ne:field_reports",
            "x/1",
            "PT-X-1",
            report("PT-X-1", MARKER),
        )
        .to_string(),
        None,
    )
    .await;
    write_at_ward(
        &ward_js,
        "PT-X-2",
        event(
            own,
            "ward/PT-X-2",
            "PT-X-2",
            json!({"report_id": "PT-X-2", "note": MARKER}),
        )
        .to_string(),
        None,
    )
    .await;
    write_at_ward(&ward_js, "PT-X-3", format!("not an event {MARKER}"), None).await;
    // Its own source, but an event of the centre's own streams (a signed checkpoint).
    let mut checkpoint = event(own, "ward/PT-X-4", "PT-X-4", json!({"note": MARKER}));
    checkpoint["type"] = json!("vn.egov.audit.checkpoint.signed");
    write_at_ward(&ward_js, "PT-X-4", checkpoint.to_string(), None).await;
    // A flood of forged events.
    const FLOOD: usize = 300;
    for i in 0..FLOOD {
        let key = format!("PT-F-{i:04}");
        write_at_ward(
            &ward_js,
            &key,
            event(
                CENTRAL_SOURCE,
                &format!("hub/{key}"),
                &key,
                report(&key, MARKER),
            )
            .to_string(),
            None,
        )
        .await;
    }

    // Every one is dealt with: the honest one admitted, the rest refused.
    let refused = 2 + 4 + FLOOD;
    let auditor = hub.credentials("auditor.env");
    wait_for(
        "the admission dealt with every message",
        Duration::from_secs(120),
        || async {
            let site_list = lienthong(&["site", "list", "--json", "--env", op]);
            let sites: Value = serde_json::from_str(&site_list).unwrap_or(Value::Null);
            let c = &sites[0]["admission"];
            c["admitted"] == 1
                && c["rejected"].as_object().is_some_and(|r| {
                    r.values().filter_map(Value::as_u64).sum::<u64>() == refused as u64
                })
        },
        || {
            format!(
                "{}\n{}",
                lienthong(&["site", "list", "--env", op]),
                hub.log_tail(30)
            )
        },
    )
    .await;
    let listed = lienthong(&["site", "list", "--env", op]);
    eprintln!("{listed}");
    assert!(listed.contains("admitted        1"), "{listed}");
    for reason in [
        "foreign_source",
        "forged_message_id",
        "schema_violation",
        "bad_envelope",
    ] {
        assert!(listed.contains(reason), "{reason} not counted: {listed}");
    }

    // The centre publishes its events now: the ward took their ids, yet they are stored.
    let hub_pub = Publisher::new(
        async_nats::jetstream::new(
            ConnectSettings::resolve(Some(&hub.credentials("ingress.env")))
                .unwrap()
                .connect("test-hub-ingress")
                .await
                .unwrap(),
        ),
        std::sync::Arc::new(lienthong_bus::SchemaRegistry::embedded().unwrap()),
        CENTRAL_SOURCE,
    );
    for (id, key) in [(central_id, "PT-REAL-1"), (central_id_2, "PT-REAL-2")] {
        let real = json!({
            "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
            "source": CENTRAL_SOURCE, "id": id, "subject": key,
            "time": "2023-12-30T01:00:00Z", "datacontenttype": "application/json",
            "data": report(key, "Ổ gà thật")
        });
        let published = hub_pub
            .publish_event(serde_json::from_value(real).unwrap(), None)
            .await
            .unwrap();
        assert!(
            !published.duplicate,
            "the central event {id} was dropped as a duplicate"
        );
    }

    // The central stream: the ward's honest event and the centre's, nothing forged.
    let (ids, text) = stream_ids(&auditor, "FIELD_REPORTS").await;
    assert_eq!(
        ids.keys().map(String::as_str).collect::<Vec<_>>(),
        ["hub/PT-REAL-1", "hub/PT-REAL-2", "ward/PT-W-1"],
        "{ids:?}"
    );
    assert!(!text.contains(MARKER), "forged data reached FIELD_REPORTS");
    // The dead letters: the site, the reason, the digest; never the forged data.
    let (_, dlq) = stream_ids(&auditor, "DLQ").await;
    assert!(!dlq.contains(MARKER), "forged data reached the DLQ");
    assert!(
        dlq.contains("\"site\":\"phu-thuy\"") && dlq.contains("\"sha256\""),
        "{}",
        &dlq[..dlq.len().min(2000)]
    );
    // The intake keeps what was offered, as it was offered.
    let (_, offered) = stream_ids(&auditor, "INTAKE").await;
    assert!(offered.contains(MARKER));
    // Counted on /metrics too.
    let metrics = common::get_text(&http, format!("{}/metrics", hub.base)).await;
    assert!(
        metrics.contains(&format!(
            "lienthong_admission_total{{site=\"phu-thuy\",outcome=\"foreign_source\"}} {}",
            FLOOD + 2
        )),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("admission"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
