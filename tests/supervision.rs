//! Supervision under `lienthong up`: a nats-server killed with SIGKILL is noticed, reported by
//! `/healthz` (503, naming it) while it is down, started again on the same store, and the bus
//! goes on: nothing stored is lost, clients reconnect, new events flow to the read models.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::up::{ingress_caller, json_or_null, post_report, settled_kpi, Up, Writer};
use serde_json::Value;

#[tokio::test]
async fn a_killed_nats_server_is_restarted_on_its_store_and_nothing_is_lost() {
    let mut up = Up::start(&["--demo", "--demo-scale", "0.02"]);
    let base = up.base.clone();
    let http = reqwest::Client::new();
    let kpi = async || -> Value { json_or_null(&http, format!("{base}/api/v1/kpi")).await };

    // The demo's history is in and stable.
    let before = settled_kpi(&http, &up).await;
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

/// `up` killed with SIGKILL under continuous ingress load and started again at once, as a
/// service manager would: its server, told to stop by the kernel, is still ending and holds
/// the port; the new run waits for it and starts. Every event the writer was told "stored"
/// (and each it sent again after an unanswered try) is on its stream exactly once.
#[tokio::test]
async fn up_killed_under_load_and_started_again_at_once_comes_back_and_loses_nothing() {
    let mut up = Up::start(&["--demo", "--demo-scale", "0.02"]);
    let http = reqwest::Client::new();
    up.wait_healthy(&http).await;
    let caller = ingress_caller(&up.credentials("ingress-demo.env"));

    let writer = Writer::start(caller, "restart");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The server is made slow to die (stopped, so that the SIGTERM the kernel sends it when
    // `up` dies waits) for 2 s: what a large store's shutdown does.
    let server = Command::new("pgrep")
        .args(["-P", &up.pid().to_string(), "nats-server"])
        .output()
        .expect("pgrep (procps) finds the server");
    let server = String::from_utf8_lossy(&server.stdout).trim().to_string();
    assert!(!server.is_empty(), "no nats-server child of up");
    let signal = |s: &str| Command::new("kill").args([s, &server]).status().unwrap();
    assert!(signal("-STOP").success());
    up.crash_and_start_again();
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(signal("-CONT").success());
    up.wait_healthy(&http).await;
    eprintln!(
        "up killed and started again at once: healthy after {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    assert!(
        up.log_tail(400).contains("still ending; waiting for it"),
        "the new run did not wait for the previous server:\n{}",
        up.log_tail(40)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, unanswered) = writer.finish().await;
    assert!(up.running(), "up stopped:\n{}", up.log_tail(40));

    // Every acknowledged event, once.
    let stored = up.stored_ids("FIELD_REPORTS").await;
    let lost: Vec<&String> = acked.iter().filter(|a| !stored.contains_key(*a)).collect();
    let duplicated = stored.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} acknowledged, {unanswered} tries unanswered and sent again, {} lost, {duplicated} duplicated",
        acked.len(),
        lost.len()
    );
    assert!(acked.len() > 20, "the writer hardly wrote: {}", acked.len());
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(duplicated, 0);
}

/// A NATS port held by another program (not a previous run's server on this store) is still
/// refused at once, with what to do.
#[test]
fn a_port_held_by_another_program_is_refused_with_what_to_do() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (ok, out) = common::up::lienthong_status(&[
        "up",
        "--nats-port",
        &port,
        "--http",
        &format!("127.0.0.1:{}", common::up::free_port()),
        "--ingress",
        &format!("127.0.0.1:{}", common::up::free_port()),
        "--data",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("NATS address 127.0.0.1:{port} is in use"))
            && out.contains("pass --nats-port"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "not at once");
}
