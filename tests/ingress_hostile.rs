//! The ingress tried as a hostile or careless sender would: envelopes the CloudEvents 1.0
//! specification forbids, events too large to store or to dead-letter, subjects too long,
//! oversized binary headers, and a mix of valid and invalid posts. Every event ends published,
//! dead-lettered or refused with a 4xx, is counted so, and everything stored can be read back
//! by other languages' CloudEvents SDKs (JavaScript in strict mode, and Python).

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Bus, INGRESS_SOURCE as SOURCE, INGRESS_TOKEN as TOKEN};
use lienthong_bus::RetryPolicy;
use serde_json::{json, Value};

fn report(id: &str, ward: &str) -> Value {
    json!({
        "specversion": "1.0", "id": format!("h/{id}"), "source": SOURCE,
        "type": "vn.egov.field_reports.report.submitted", "subject": id,
        "time": "2023-11-18T12:42:10Z", "datacontenttype": "application/json",
        "dataclassification": "public",
        "data": {"report_id": id, "category": "CSDT", "category_name": "Chiếu sáng đô thị", "ward": ward,
                 "status": "open", "description": "Đèn hỏng", "requested_at": "2023-11-18T19:42:10+07:00"}
    })
}

async fn post(url: &str, content_type: &str, body: String) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn pointers(problem: &Value) -> Vec<String> {
    problem["violations"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x["pointer"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn envelopes_the_specification_forbids_are_refused_naming_each_violation() {
    let bus = Bus::start().await;
    let (url, ingress) = common::start_ingress(
        &bus,
        64 * 1024,
        RetryPolicy::default(),
        Duration::from_secs(5),
    )
    .await;
    let structured = "application/cloudevents+json";
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut e = report("E-1", "phu-thuy");
                e["specversion"] = json!("0.3");
                e
            },
            "/specversion",
        ),
        (
            {
                let mut e = report("E-2", "phu-thuy");
                e["id"] = json!("");
                e
            },
            "/id",
        ),
        (
            {
                let mut e = report("E-3", "phu-thuy");
                e["Bad_Ext"] = json!("x");
                e
            },
            "/Bad_Ext",
        ),
        (
            {
                let mut e = report("E-4", "phu-thuy");
                e["dataclassification"] = json!("top-secret");
                e
            },
            "/dataclassification",
        ),
        (
            {
                let mut e = report("E-5", "phu-thuy");
                e["time"] = json!("hôm qua");
                e
            },
            "/time",
        ),
        (
            {
                let mut e = report("E-6", "phu-thuy");
                e["source"] = json!("");
                e
            },
            "/source",
        ),
        (
            {
                let mut e = report("E-7", "phu-thuy");
                e["traceparent"] = json!("not-a-trace");
                e
            },
            "/traceparent",
        ),
        (
            {
                let mut e = report("E-8", "phu-thuy");
                e["nested"] = json!({"a": 1});
                e
            },
            "/nested",
        ),
    ];
    for (event, pointer) in &cases {
        let (status, problem) = post(&url, structured, event.to_string()).await;
        assert_eq!(status, 400, "{pointer}: {problem}");
        assert!(
            pointers(&problem).contains(&pointer.to_string()),
            "{pointer}: {problem}"
        );
    }
    // In a batch, the violation is named with the event's place.
    let mut empty_id = report("E-10", "phu-thuy");
    empty_id["id"] = json!("");
    let batch = json!([report("E-9", "phu-thuy"), empty_id]);
    let (status, problem) = post(
        &url,
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(pointers(&problem), vec!["/1/id"]);
    // Binary mode: a ce- header that is not an attribute name.
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(TOKEN)
        .header("ce-specversion", "1.0")
        .header("ce-id", "b-1")
        .header("ce-source", SOURCE)
        .header("ce-type", "vn.egov.field_reports.report.submitted")
        .header("ce-bad_name", "x")
        .header("Content-Type", "application/json")
        .body(report("B-1", "phu-thuy")["data"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(pointers(&problem), vec!["/headers/ce-bad_name"]);

    assert_eq!(bus.messages("FIELD_REPORTS").await, 0, "nothing stored");
    assert_eq!(bus.messages("DLQ").await, 0, "nothing kept: refused");
    let o = ingress.outcomes();
    assert_eq!(o.refused.get(), cases.len() as u64 + 2 + 1);
    assert_eq!(o.total(), o.refused.get());
}

#[tokio::test]
async fn what_no_retry_can_fix_is_answered_4xx_and_ends_in_the_dlq_or_the_stream() {
    let bus = Bus::start().await;
    let (url, ingress) = common::start_ingress(
        &bus,
        4 * 1024 * 1024,
        RetryPolicy::default(),
        Duration::from_secs(5),
    )
    .await;
    let structured = "application/cloudevents+json";
    // Invalid (a ward that does not exist) and 1.5 MB: its dead letter would not fit whole.
    let mut big_invalid = report("BIG-1", "atlantis");
    big_invalid["data"]["description"] = json!("x".repeat(1_500_000));
    let (status, problem) = post(&url, structured, big_invalid.to_string()).await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["invalid"][0]["dead_letter_sequence"].is_u64(),
        "{problem}"
    );
    // Valid but larger than the server takes: dead-lettered as too large.
    let mut big_valid = report("BIG-2", "phu-thuy");
    big_valid["data"]["description"] = json!("y".repeat(1_200_000));
    let (status, problem) = post(&url, structured, big_valid.to_string()).await;
    assert_eq!(status, 400, "{problem}");
    let dlq = bus.read_all("auditor", "DLQ").await;
    assert_eq!(dlq.len(), 2);
    for m in &dlq {
        let letter = lienthong_bus::DeadLetter::from_event(
            &lienthong_bus::subscriber::decode_stored(m, None)
                .unwrap()
                .event,
        )
        .unwrap();
        assert_eq!(letter.original["truncated"], true, "{}", letter.message);
        assert!(letter.original["sha256"].is_string());
    }
    // A subject far too long for a NATS subject: stored under a digest, the key kept whole.
    let long = "K".repeat(5000);
    let mut long_subject = report("LONG-1", "phu-thuy");
    long_subject["subject"] = json!(long);
    let (status, answer) = post(&url, structured, long_subject.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    let stored = bus.read_all("auditor", "FIELD_REPORTS").await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].subject.contains(".~~"));
    // Binary mode: the ce- headers count against the limit too.
    let (small_url, _) = common::start_ingress(
        &bus,
        16 * 1024,
        RetryPolicy::default(),
        Duration::from_secs(5),
    )
    .await;
    let r = reqwest::Client::new()
        .post(&small_url)
        .bearer_auth(TOKEN)
        .header("ce-specversion", "1.0")
        .header("ce-id", "bin-big")
        .header("ce-source", SOURCE)
        .header("ce-type", "vn.egov.field_reports.report.submitted")
        .header("ce-subject", "BIN-BIG")
        .header("ce-note", "z".repeat(12 * 1024))
        .header("Content-Type", "application/json")
        .body(json!({"pad": "p".repeat(8 * 1024)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let o = ingress.outcomes();
    assert_eq!((o.dead_lettered.get(), o.published.get()), (2, 1));
}

/// Structured-mode JSON of every message on `stream`.
async fn payloads(bus: &Bus, stream: &str) -> Vec<String> {
    bus.read_all("auditor", stream)
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

fn read_back(program: &str, args: &[&str], lines: &[String], env: (&str, &Path)) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .env(env.0, env.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{program}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn after_any_mix_of_posts_other_sdks_read_back_everything_and_totals_match() {
    let bus = Bus::start().await;
    let (url, ingress) = common::start_ingress(
        &bus,
        1024 * 1024,
        RetryPolicy::default(),
        Duration::from_secs(5),
    )
    .await;
    // A deterministic mix: valid, schema-invalid, envelope-invalid, repeated, batches.
    let mut sent = 0u64;
    for i in 0..60 {
        let id = format!("MIX-{}", i % 45);
        let mut e = report(&id, if i % 7 == 3 { "atlantis" } else { "duc-long" });
        match i % 9 {
            4 => e["specversion"] = json!("0.3"),
            5 => e["Weird-Name"] = json!(1),
            6 => e["dataclassification"] = json!("nội bộ"),
            _ => {}
        }
        if i % 10 == 9 {
            let batch = json!([e, report(&format!("MIX-B{i}"), "lac-dao")]);
            post(
                &url,
                "application/cloudevents-batch+json",
                batch.to_string(),
            )
            .await;
            sent += 2;
        } else {
            post(&url, "application/cloudevents+json", e.to_string()).await;
            sent += 1;
        }
    }
    let o = ingress.outcomes();
    assert_eq!(o.total(), sent, "every event counted once");
    assert!(o.published.get() > 0 && o.dead_lettered.get() > 0 && o.refused.get() > 0);

    // Totals: the read model counts exactly the distinct reports on the stream.
    let stored = payloads(&bus, "FIELD_REPORTS").await;
    let distinct: std::collections::BTreeSet<String> = stored
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(p).unwrap()["data"]["report_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let (store, metrics) = bus.rebuild(Default::default()).await;
    let tree = store.current("field_reports").unwrap();
    let stats = lienthong_replay::field_reports::FieldReportsView { tree: &tree }
        .stats()
        .unwrap();
    assert_eq!(stats.total as usize, distinct.len());
    assert_eq!(
        metrics.skipped.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing skipped"
    );

    // Other languages' SDKs read back everything stored (and the dead letters).
    let mut lines = stored;
    lines.extend(payloads(&bus, "DLQ").await);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let js = root.join("tests/js");
    assert!(
        js.join("node_modules/cloudevents").exists(),
        "the JavaScript CloudEvents SDK is missing: run ./scripts/install-js-sdk (./scripts/test does)"
    );
    let verdict = read_back(
        "node",
        &[js.join("read_back.mjs").to_str().unwrap()],
        &lines,
        ("NODE_PATH", &js.join("node_modules")),
    );
    assert_eq!(verdict["failures"], json!([]), "{verdict}");
    assert_eq!(verdict["read"], lines.len());
    let py = root.join(".tools/python");
    let verdict = read_back(
        "python3",
        &[root.join("tests/python/read_back.py").to_str().unwrap()],
        &lines,
        ("PYTHONPATH", &py),
    );
    assert_eq!(verdict["failures"], json!([]), "{verdict}");
    assert_eq!(verdict["read"], lines.len());
}
