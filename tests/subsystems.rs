//! A subsystem registered on a running bus, as an integrator and an operator would do it:
//! `lienthong subsystem register SPEC` against `lienthong up` (no rebuild, no restart), then
//! its publishers on NATS and through the HTTP ingress, its stream read back by an
//! independent client with the auditor's credentials, its audit chain, its catalogue entry
//! and its registration on `REGISTRY`; and what is refused, each with the reason.

mod common;

use std::path::Path;
use std::time::Duration;

use common::up::{lienthong, lienthong_status, wait_for, Up};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/registry")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// A reading of gauge `gauge` as a structured CloudEvent.
fn reading(id: &str, gauge: &str, level: f64) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "urn:lienthong:phanthiet:gauges",
        "type": "vn.egov.gauges.level.measured",
        "subject": gauge,
        "time": "2026-10-14T03:00:00Z",
        "datacontenttype": "application/json",
        "data": {"gauge": gauge, "measured_at": "2026-10-14T03:00:00Z", "level_cm": level, "ward": "phu-thuy"}
    })
}

/// Waits until the gauges' generic read model has folded `n` events.
async fn wait_read_model(http: &reqwest::Client, up: &Up, what: &str, n: u64) {
    wait_for(
        what,
        Duration::from_secs(30),
        || async {
            let url = format!("{}/api/v1/registered/gauges", up.base);
            match http.get(url).send().await {
                Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["events"] == n),
                Err(_) => false, // not answering (yet)
            }
        },
        || up.log_tail(20),
    )
    .await;
}

/// POSTs a structured event: its status and answer (0 while the ingress does not answer).
async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let Ok(r) = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .body(body.to_string())
        .send()
        .await
    else {
        return (0, Value::Null);
    };
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_subsystem_registered_on_a_running_bus_gets_its_stream_role_ingress_audit_and_catalogue()
{
    let mut up = Up::start(&["--demo", "--demo-scale", "0.01"]);
    let http = reqwest::Client::new();
    up.wait_healthy(&http).await;
    let pid = up.pid();
    let operator = up.credentials("operator.env");
    let operator = operator.to_str().unwrap();
    let creds_dir = tempfile::tempdir().unwrap();
    let creds = creds_dir.path().to_str().unwrap();

    // Checked offline first; a spec with a mistake is refused naming it.
    let out = lienthong(&["subsystem", "register", &fixture("gauges.toml"), "--check"]);
    assert!(out.contains("well formed"), "{out}");
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.toml");
    std::fs::copy(
        fixture("level.measured.v1.json"),
        work.path().join("level.measured.v1.json"),
    )
    .unwrap();
    // The fixture with one line changed.
    let write_bad = |from: &str, to: &str| {
        let text = std::fs::read_to_string(fixture("gauges.toml")).unwrap();
        assert!(text.contains(from));
        std::fs::write(&bad, text.replace(from, to)).unwrap();
    };
    write_bad("key = \"/gauge\"", "key = \"/station\"");
    let (ok, out) = lienthong_status(&["subsystem", "register", bad.to_str().unwrap(), "--check"]);
    assert!(!ok && out.contains("no property \"station\""), "{out}");
    // A compiled subsystem's name is not free.
    write_bad("stream = \"GAUGES\"", "stream = \"FIELD_REPORTS\"");
    let (ok, out) = lienthong_status(&[
        "--env",
        operator,
        "subsystem",
        "register",
        bad.to_str().unwrap(),
        "--credentials-dir",
        creds,
    ]);
    assert!(
        !ok && out.contains("compiled subsystem field_reports"),
        "{out}"
    );

    // Registered on the running bus.
    let out = lienthong(&[
        "--env",
        operator,
        "subsystem",
        "register",
        &fixture("gauges.toml"),
        "--credentials-dir",
        creds,
        "--by",
        "flood-control integrator",
    ]);
    assert!(out.contains("subsystem gauges registered"), "{out}");
    assert!(out.contains("GAUGES: created"), "{out}");
    // Again: nothing changes.
    let again = lienthong(&[
        "--env",
        operator,
        "subsystem",
        "register",
        &fixture("gauges.toml"),
        "--credentials-dir",
        creds,
    ]);
    assert!(again.contains("nothing changed"), "{again}");
    let list = lienthong(&["--env", operator, "subsystem", "list"]);
    assert!(
        list.contains("GAUGES") && list.contains("flood-control integrator"),
        "{list}"
    );

    // Its stream, as the registration asked.
    let info = lienthong(&["--env", operator, "streams", "status"]);
    assert!(info.contains("GAUGES"), "{info}");

    // Its publishers on NATS: their own subjects only.
    let adapter_env = creds_dir.path().join("adapter-gauges.env");
    let (client, refusals) = lienthong_bus::ConnectSettings::resolve(Some(&adapter_env))
        .unwrap()
        .connect_watched("test-gauges")
        .await
        .unwrap();
    let schemas = std::sync::Arc::new(lienthong_bus::SchemaRegistry::embedded().unwrap());
    // The test process learns the registration as any process of the bus does.
    let reader = lienthong_bus::StreamReader::new(client.clone(), refusals.clone());
    lienthong_bus::registry::live::load(&reader).await.unwrap();
    let publisher = lienthong_bus::Publisher::new(
        async_nats::jetstream::new(client.clone()),
        schemas.clone(),
        "urn:lienthong:phanthiet:gauges",
    )
    .with_refusals(refusals);
    let ty = lienthong_bus::EventType::parse("vn.egov.gauges.level.measured").unwrap();
    let draft = |id: &str, data: Value| {
        lienthong_bus::EventDraft::new(
            ty.clone(),
            id,
            "CATY-01",
            chrono::Utc::now(),
            data,
            lienthong_bus::Classification::Public,
        )
    };
    let published = publisher
        .publish(draft(
            "nats-1",
            json!({"gauge": "CATY-01", "measured_at": "2026-10-14T03:00:00Z", "level_cm": 182.5, "ward": "phu-thuy"}),
        ))
        .await
        .unwrap();
    assert_eq!(published.stream, "GAUGES");
    // Invalid data is refused before it is sent.
    let e = publisher
        .publish(draft("nats-2", json!({"gauge": "CATY-01"})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("level_cm"), "{e}");
    // Another subsystem's subjects are not its to publish.
    let js = async_nats::jetstream::new(client.clone());
    let refused = async {
        js.publish("egov.field_reports.report.X.submitted", "{}".into())
            .await?
            .await
    }
    .await;
    assert!(
        refused.is_err(),
        "adapter-gauges published to FIELD_REPORTS"
    );

    // Through the HTTP ingress with its token: valid, invalid (to the DLQ), another type.
    let token = std::fs::read_to_string(creds_dir.path().join("adapter-gauges.ingress-token"))
        .unwrap()
        .trim()
        .to_string();
    let url = up.ingress_url();
    let mut ok_status = 0;
    for _ in 0..20 {
        // The ingress learns the registration within a second.
        (ok_status, _) = post(&http, &url, &token, &reading("http-1", "CATY-02", 95.0)).await;
        if ok_status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(ok_status, 202);
    let mut invalid = reading("http-2", "CATY-02", 95.0);
    invalid["data"]["level_cm"] = json!(99999);
    let (status, body) = post(&http, &url, &token, &invalid).await;
    assert_eq!(status, 400, "{body}");
    let mut foreign = reading("http-3", "CATY-02", 95.0);
    foreign["type"] = json!("vn.egov.field_reports.report.submitted");
    let (status, _) = post(&http, &url, &token, &foreign).await;
    assert_eq!(status, 403);
    let (status, _) = post(&http, &url, "not-the-token", &reading("http-4", "X", 1.0)).await;
    assert_eq!(status, 401);

    // An independent client with the auditor's credentials finds only valid CloudEvents.
    let auditor = up.credentials("auditor.env");
    let (client, _) = lienthong_bus::ConnectSettings::resolve(Some(&auditor))
        .unwrap()
        .connect_watched("test-auditor")
        .await
        .unwrap();
    let reader = lienthong_bus::StreamReader::new(client, Default::default());
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("level.measured.v1.json")).unwrap())
            .unwrap();
    let mut ids = Vec::new();
    for m in reader.read_all("GAUGES", None).await.unwrap() {
        let event: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "vn.egov.gauges.level.measured");
        assert_eq!(
            event["dataschema"],
            "https://lienthong.vn/schemas/gauges/level.measured/v1.json"
        );
        let data = &event["data"];
        assert!(data["level_cm"].as_f64().unwrap() <= 2000.0, "{event}");
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| data.get(k.as_str().unwrap()).is_some()),
            "{event}"
        );
        ids.push(event["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids, ["nats-1", "http-1"]);
    // The invalid one is a dead letter with its reason.
    let dlq = reader.read_all("DLQ", None).await.unwrap();
    assert!(
        dlq.iter()
            .any(|m| String::from_utf8_lossy(&m.payload).contains("http-2")),
        "the invalid reading is not in the DLQ"
    );

    // The registration itself: who, what, with which schema, on REGISTRY.
    let registry = reader.read_all("REGISTRY", None).await.unwrap();
    assert_eq!(registry.len(), 1);
    let event: Value = serde_json::from_slice(&registry[0].payload).unwrap();
    assert_eq!(event["type"], "vn.egov.registry.subsystem.registered");
    assert!(event["data"]["by"]
        .as_str()
        .unwrap()
        .contains("flood-control integrator"));
    assert_eq!(
        event["data"]["spec"]["events"][0]["schema"]["$id"],
        "https://lienthong.vn/schemas/gauges/level.measured/v1.json"
    );
    assert!(!registry[0]
        .payload
        .windows(token.len())
        .any(|w| w == token.as_bytes()));

    // The catalogue lists it; its schema is served.
    let asyncapi: Value = http
        .get(format!("{}/asyncapi.json", up.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        asyncapi
            .to_string()
            .contains("vn.egov.gauges.level.measured"),
        "not in the AsyncAPI catalogue"
    );
    let page = http
        .get(format!("{}/catalog", up.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("GAUGES"), "not on /catalog");
    let served = http
        .get(format!("{}/schemas/gauges/level.measured/v1.json", up.base))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status().as_u16(), 200);

    // Its history is chained and checkpointed like the others'.
    let public_key = up.data.join("audit-public.key");
    wait_for(
        "GAUGES covered by a signed checkpoint",
        Duration::from_secs(60),
        || async {
            let (ok, out) = up.audit_verify(&public_key);
            ok && out
                .lines()
                .any(|l| l.contains("GAUGES") && !l.contains(" 0 "))
        },
        || up.audit_verify(&public_key).1,
    )
    .await;

    // Schema versions at run time: an optional field is backward compatible; a new
    // required one is not, and the refusal names it.
    let mut v2: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("level.measured.v1.json")).unwrap())
            .unwrap();
    v2["properties"]["battery_v"] = json!({"type": "number"});
    let v2_file = work.path().join("v2.json");
    std::fs::write(&v2_file, v2.to_string()).unwrap();
    let ty = "vn.egov.gauges.level.measured";
    let out = lienthong(&[
        "--env",
        operator,
        "schema",
        "register",
        ty,
        v2_file.to_str().unwrap(),
    ]);
    assert!(out.contains("v2 registered"), "{out}");
    let mut v3 = v2.clone();
    v3["required"]
        .as_array_mut()
        .unwrap()
        .push(json!("battery_v"));
    v3["properties"]["level_cm"]["maximum"] = json!(1000);
    let v3_file = work.path().join("v3.json");
    std::fs::write(&v3_file, v3.to_string()).unwrap();
    let (ok, out) = lienthong_status(&[
        "--env",
        operator,
        "schema",
        "register",
        ty,
        v3_file.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("v3 breaks v2") && out.contains("battery_v") && out.contains("level_cm"),
        "{out}"
    );
    let (ok, out) = lienthong_status(&[
        "--env",
        operator,
        "schema",
        "register",
        "vn.egov.field_reports.report.submitted",
        v2_file.to_str().unwrap(),
    ]);
    assert!(
        !ok && out.contains("compiled subsystem field_reports"),
        "{out}"
    );
    // The ingress validates against the newest version from then on.
    let mut with_battery = reading("http-5", "CATY-03", 120.0);
    with_battery["data"]["battery_v"] = json!(12.6);
    let mut stored = Value::Null;
    for _ in 0..20 {
        let (status, body) = post(&http, &url, &token, &with_battery).await;
        if status == 202 {
            stored = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!stored.is_null(), "v2 data never accepted");
    let last = reader.read_all("GAUGES", None).await.unwrap();
    let last: Value = serde_json::from_slice(&last.last().unwrap().payload).unwrap();
    assert_eq!(
        last["dataschema"],
        "https://lienthong.vn/schemas/gauges/level.measured/v2.json"
    );

    // Its generic read model: events per type and month (the subsystem's time, UTC+7),
    // the latest state per aggregate, a dataset in the DCAT catalogue.
    let base = up.base.clone();
    let get = |path: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            match http.get(format!("{base}{path}")).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()), // not answering (yet)
            }
        }
    };
    let month_now = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
        .format("%Y-%m")
        .to_string();
    wait_read_model(
        &http,
        &up,
        "the generic read model holds the three readings",
        3,
    )
    .await;
    let (_, body) = get("/api/v1/registered/gauges".into()).await;
    let counts: Value = serde_json::from_str(&body).unwrap();
    let per_month: Vec<(String, u64)> = counts["per_type_and_month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["type"], ty);
            (
                c["month"].as_str().unwrap().to_string(),
                c["events"].as_u64().unwrap(),
            )
        })
        .collect();
    // The subsystem's time is where the registration says, `measured_at` in the data: the
    // reading published over NATS carried another envelope time (now).
    assert_ne!(month_now, "2026-10");
    assert_eq!(per_month, [("2026-10".to_string(), 3)], "{body}");
    assert_eq!(counts["aggregates"], 3);
    let (status, body) = get("/api/v1/registered/gauges/latest/CATY-03".into()).await;
    assert_eq!(status, 200, "{body}");
    let latest: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(latest["data"]["battery_v"], 12.6);
    assert_eq!(latest["version"], 2);
    let (_, body) = get("/api/v1/registered/gauges/latest?limit=2".into()).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after"], "CATY-02");
    let (status, _) = get("/api/v1/registered/nothing".into()).await;
    assert_eq!(status, 404);
    let (_, body) = get("/api/v1/registered".into()).await;
    assert!(body.contains("\"GAUGES\""), "{body}");
    assert!(
        !body.contains("flood-control integrator"),
        "who registered it is the operators' business: {body}"
    );
    let (status, body) = get("/api/v1/datasets/registered-gauges-monthly/data.csv".into()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.lines()
            .any(|l| l.contains("2026-10") && l.contains(ty) && l.ends_with(",3")),
        "{body}"
    );
    let (_, body) = get("/api/v1/datasets/catalog.jsonld".into()).await;
    assert!(
        body.contains("registered-gauges-monthly"),
        "not in the DCAT catalogue"
    );

    // Agencies may be granted it: the flood-control board reads its copy.
    let out = lienthong(&[
        "--env",
        operator,
        "agency",
        "add",
        "flood",
        "--streams",
        "GAUGES",
        "--credentials-dir",
        creds,
    ]);
    assert!(out.contains("agency flood may read GAUGES"), "{out}");
    let agency_env = creds_dir.path().join("agency-flood.env");
    wait_for(
        "the agency's copy of GAUGES holds the readings",
        Duration::from_secs(30),
        || async {
            let (ok, out) = lienthong_status(&[
                "--env",
                agency_env.to_str().unwrap(),
                "tail",
                "GAUGES",
                "--no-follow",
                "--all",
            ]);
            ok && out.contains("CATY-03")
        },
        || {
            lienthong_status(&[
                "--env",
                agency_env.to_str().unwrap(),
                "tail",
                "GAUGES",
                "--no-follow",
            ])
            .1
        },
    )
    .await;
    let (ok, out) = lienthong_status(&[
        "--env",
        agency_env.to_str().unwrap(),
        "tail",
        "FIELD_REPORTS",
        "--no-follow",
    ]);
    assert!(!ok, "{out}");

    // And all of it without a restart.
    assert_eq!(up.pid(), pid);
    assert!(
        !up.log_tail(400).contains("starting nats-server again"),
        "{}",
        up.log_tail(40)
    );

    // A registration is permanent: after a restart of the bus, the same token and role work,
    // the read model goes on from where it was.

    up.restart_after(|_| ());
    let mut status = 0;
    for _ in 0..100 {
        (status, _) = post(
            &http,
            &url,
            &token,
            &reading("after-restart", "CATY-04", 77.0),
        )
        .await;
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(status, 202, "{}", up.log_tail(30));
    let (client, _) = lienthong_bus::ConnectSettings::resolve(Some(&adapter_env))
        .unwrap()
        .connect_watched("test-gauges-again")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    // As any NATS client would publish it (structured mode, its dataschema named).
    let mut raw = reading("nats-raw", "CATY-05", 10.0);
    raw["dataschema"] = json!("https://lienthong.vn/schemas/gauges/level.measured/v2.json");
    let ack = async {
        js.publish("egov.gauges.level.CATY-05.measured", raw.to_string().into())
            .await?
            .await
    }
    .await;
    assert!(
        ack.is_ok(),
        "adapter-gauges cannot publish after a restart: {ack:?}"
    );
    wait_read_model(&http, &up, "the read model after the restart", 5).await;
}

/// A registered subsystem's age limit removes its oldest events: that is neither tampering for
/// `audit verify` (each removed one is checked against its record in the signed checkpoints,
/// and against the age limit its signed registration gives) nor a lost message for the
/// replay's guard. An operator who shortens the stream's own limit does not get the same
/// pass: what that removes is missing.
#[tokio::test]
async fn what_a_registered_streams_age_limit_removes_is_verified_as_recorded_not_taken_for_tampering(
) {
    let up = Up::start(&[]);
    let http = reqwest::Client::new();
    up.wait_healthy(&http).await;
    let operator = up.credentials("operator.env");
    let creds = tempfile::tempdir().unwrap();
    // The gauges, their readings kept 15 seconds.
    std::fs::copy(
        fixture("level.measured.v1.json"),
        creds.path().join("level.measured.v1.json"),
    )
    .unwrap();
    let spec = creds.path().join("gauges.toml");
    std::fs::write(
        &spec,
        std::fs::read_to_string(fixture("gauges.toml"))
            .unwrap()
            .replace("retention_days = 400", "retention_seconds = 15"),
    )
    .unwrap();
    lienthong(&[
        "--env",
        operator.to_str().unwrap(),
        "subsystem",
        "register",
        spec.to_str().unwrap(),
        "--credentials-dir",
        creds.path().to_str().unwrap(),
    ]);
    let (client, refusals) =
        lienthong_bus::ConnectSettings::resolve(Some(&creds.path().join("adapter-gauges.env")))
            .unwrap()
            .connect_watched("test-gauges")
            .await
            .unwrap();
    let reader = lienthong_bus::StreamReader::new(client.clone(), refusals.clone());
    lienthong_bus::registry::live::load(&reader).await.unwrap();
    let publisher = lienthong_bus::Publisher::new(
        async_nats::jetstream::new(client.clone()),
        std::sync::Arc::new(lienthong_bus::SchemaRegistry::embedded().unwrap()),
        "urn:lienthong:phanthiet:gauges",
    )
    .with_refusals(refusals);
    let ty = lienthong_bus::EventType::parse("vn.egov.gauges.level.measured").unwrap();
    let publish = |id: String| {
        let p = publisher.clone();
        let ty = ty.clone();
        async move {
            p.publish(lienthong_bus::EventDraft::new(
                ty,
                id,
                "CATY-01",
                chrono::Utc::now(),
                json!({"gauge": "CATY-01", "measured_at": chrono::Utc::now().to_rfc3339(), "level_cm": 120.0, "ward": "phu-thuy"}),
                lienthong_bus::Classification::Public,
            ))
            .await
            .unwrap();
        }
    };
    for i in 0..5 {
        publish(format!("old-{i}")).await;
    }
    let public_key = up.data.join("audit-public.key");
    wait_for(
        "the five readings checkpointed",
        Duration::from_secs(60),
        || async {
            let (ok, out) = up.audit_verify(&public_key);
            ok && out.contains("GAUGES: intact — sequences 1..=5")
        },
        || up.audit_verify(&public_key).1,
    )
    .await;
    wait_for(
        "the old readings removed by the age limit",
        Duration::from_secs(60),
        || async { reader.state("GAUGES").await.unwrap().messages == 0 },
        String::new,
    )
    .await;
    for i in 0..2 {
        publish(format!("new-{i}")).await;
    }
    wait_for(
        "verified across what the age limit removed",
        Duration::from_secs(60),
        || async {
            let (ok, out) = up.audit_verify(&public_key);
            ok && out.contains("GAUGES: intact — sequences 1..=7")
                && out.contains("the first 5 removed by the stream's age limit")
        },
        || up.audit_verify(&public_key).1,
    )
    .await;
    // The replay's guard takes it for no loss: no alarm, the read model goes on.
    wait_read_model(&http, &up, "the read model goes on", 7).await;
    let health = http
        .get(format!("{}/healthz", up.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200, "{}", up.log_tail(20));
    assert!(
        !up.log_tail(200).contains("replay alarm"),
        "{}",
        up.log_tail(40)
    );

    // Two more readings, checkpointed; then the operator shortens the stream's own limit to a
    // second: they go long before the registration's 15 seconds — missing, not expired.
    for i in 0..2 {
        publish(format!("late-{i}")).await;
    }
    wait_for(
        "the late readings checkpointed",
        Duration::from_secs(10),
        || async {
            let (ok, out) = up.audit_verify(&public_key);
            ok && out.contains("GAUGES: intact — sequences 1..=9")
        },
        || up.audit_verify(&public_key).1,
    )
    .await;
    let js = async_nats::jetstream::new(
        lienthong_bus::ConnectSettings::resolve(Some(&operator))
            .unwrap()
            .connect("test-operator")
            .await
            .unwrap(),
    );
    let mut config = js
        .get_stream("GAUGES")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    config.max_age = Duration::from_secs(1);
    config.duplicate_window = Duration::from_secs(1);
    js.update_stream(config).await.unwrap();
    wait_for(
        "the late readings removed early",
        Duration::from_secs(10),
        || async { reader.state("GAUGES").await.unwrap().messages == 0 },
        String::new,
    )
    .await;
    let (ok, out) = up.audit_verify(&public_key);
    assert!(!ok, "{out}");
    // (The two readings before them are missing too when they were not yet 15 s old.)
    assert!(
        out.contains("GAUGES: TAMPERED — missing at sequence 8")
            || out.contains("GAUGES: TAMPERED — missing at sequence 6"),
        "{out}"
    );
}
