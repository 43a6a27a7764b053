//! Supervision under `lienthong up`: a nats-server killed with SIGKILL is noticed, reported by
//! `/healthz` (503, naming it) while it is down, started again on the same store, and the bus
//! goes on: nothing stored is lost, clients reconnect, new events flow to the read models.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::up::{ingress_caller, json_or_null, post_report, Up};
use serde_json::Value;

#[tokio::test]
async fn a_killed_nats_server_is_restarted_on_its_store_and_nothing_is_lost() {
    let mut up = Up::start(&["--demo", "--demo-scale", "0.02"]);
    let base = up.base.clone();
    let http = reqwest::Client::new();
    let kpi = async || -> Value { json_or_null(&http, format!("{base}/api/v1/kpi")).await };

    // The demo's history is in and stable.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut before = Value::Null;
    loop {
        let k = kpi().await;
        if k["meetings"]["wards_connected"] == 18 && k == before {
            break;
        }
        before = k;
        assert!(
            Instant::now() < deadline,
            "the demo never settled\n{}",
            up.log_tail(25)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let sequences = before["stream_sequences"].clone();

    // SIGKILL the server `up` started.
    let pids = Command::new("pgrep")
        .args(["-P", &up.pid().to_string(), "nats-server"])
        .output()
        .expect("pgrep (procps) finds the server");
    let pid = String::from_utf8_lossy(&pids.stdout).trim().to_string();
    assert!(!pid.is_empty(), "no nats-server child of up");
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());

    // /healthz names it while it is down, then is healthy again.
    let (mut saw_down, mut healthy) = (None, false);
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && !(saw_down.is_some() && healthy) {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if status == 503 && body["down"]["nats-server"].is_string() {
                saw_down = Some(body);
            } else if status == 200 && saw_down.is_some() {
                healthy = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down = saw_down.unwrap_or_else(|| {
        panic!(
            "/healthz never said the server was down\n{}",
            up.log_tail(25)
        )
    });
    assert!(
        down["down"]["nats-server"]
            .as_str()
            .unwrap()
            .contains("exited"),
        "{down}"
    );
    assert!(healthy, "/healthz never recovered\n{}", up.log_tail(25));
    assert!(up.running(), "up is still running");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lienthong_component_restarts_total{component=\"nats-server\"} 1"),
        "{metrics}"
    );

    // Nothing stored was lost; the clients reconnected: a new report flows through the
    // ingress to the read model.
    let ingress = ingress_caller(&up.credentials("ingress-demo.env"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = post_report(
            &http,
            &ingress,
            "after-restart",
            "AFTER-RESTART-1",
            "mui-ne",
        )
        .await;
        if r.as_ref().is_ok_and(|r| r.status() == 202) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ingress never took an event again: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let k = kpi().await;
        if k["field_reports"]["total"].as_u64()
            == before["field_reports"]["total"].as_u64().map(|n| n + 1)
        {
            for (stream, seq) in sequences.as_object().unwrap() {
                assert!(
                    k["stream_sequences"][stream].as_u64() >= seq.as_u64(),
                    "{stream} lost events: {seq} before, {} after",
                    k["stream_sequences"][stream]
                );
            }
            assert_eq!(k["documents"], before["documents"], "nothing lost");
            assert_eq!(k["sso"], before["sso"], "nothing lost");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new report never reached the read model: {k}\n{}",
            up.log_tail(25)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
