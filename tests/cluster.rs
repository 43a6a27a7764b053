//! `lienthong up --cluster 3`: three nats-server nodes with routes, every stream at three
//! replicas. While a client publishes through the ingress, a follower node and then the field
//! reports stream's leader are killed with SIGKILL: no acknowledged event is lost or stored
//! twice; publishing resumes within 5 s after the follower's loss, and after the leader's once
//! the remaining nodes have elected a new one (nats-server's Raft waits 4–9 s for a lost
//! leader before it campaigns: server/raft.go, not configurable); each killed node is restarted
//! on its store; the read models equal the demo's totals plus what was published.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::up::{ingress_caller, json_or_null, post_report, Up};
use lienthong_bus::cloudevents::AttributesReader;
use serde_json::Value;

#[tokio::test]
async fn losing_a_follower_or_the_leader_loses_nothing_and_publishing_resumes() {
    let up = Up::start(&["--cluster", "3", "--demo", "--demo-scale", "0.02"]);
    let (base, data) = (up.base.clone(), up.data.clone());
    let http = reqwest::Client::new();
    let log_tail = || up.log_tail(30);
    let get = async |path: &str| -> Value { json_or_null(&http, format!("{base}{path}")).await };

    // The demo's totals, on a cluster.
    let totals_file = data.join("demo/totals.json");
    let deadline = Instant::now() + Duration::from_secs(240);
    let (totals, all_time) = loop {
        let k = get("/api/v1/kpi").await;
        let stats = get("/api/v1/field-reports/stats").await;
        if let Ok(t) = std::fs::read(&totals_file) {
            let t: Value = serde_json::from_slice(&t).unwrap();
            if k["documents"]["sent"] == t["documents"]["outgoing"]
                && k["sso"]["registered_users"] == t["sso"]["registered_users"]
                && stats["total"] == t["field_reports"]["reports"]
                && k["meetings"] == t["meetings"]
            {
                break (t, stats["total"].as_u64().unwrap());
            }
        }
        assert!(
            Instant::now() < deadline,
            "the demo never reached its totals\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Every stream at three replicas.
    let operator =
        lienthong_bus::ConnectSettings::resolve(Some(&data.join("credentials/operator.env")))
            .unwrap();
    assert!(operator.url.split(',').count() == 3, "{}", operator.url);
    let js = async_nats::jetstream::new(operator.connect("test-operator").await.unwrap());
    let leader = async || -> (usize, String) {
        let mut s = js.get_stream("FIELD_REPORTS").await.unwrap();
        let info = s.info().await.unwrap().clone();
        let leader = info
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .expect("a leader");
        (info.config.num_replicas, leader)
    };
    let (replicas, first_leader) = leader().await;
    assert_eq!(replicas, 3);
    let follower = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| *n != first_leader)
        .unwrap()
        .to_string();
    let kill = |node: &str| {
        let pid = Command::new("pgrep")
            .args([
                "-f",
                &format!("nats-{}/nats.conf", node.trim_start_matches('n')),
            ])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
        assert!(!pid.is_empty(), "{node}'s process");
        assert!(Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success());
    };

    // Publish through the ingress, one at a time, retrying what is refused (503); a follower
    // is killed after the first 40, the leader after 100.
    let ingress = ingress_caller(&up.credentials("ingress-demo.env"));
    let n = 150;
    let mut acked = Vec::new();
    // The longest wait for an acknowledgement after each kill: the follower's, the leader's.
    let mut gaps = [Duration::ZERO; 2];
    let mut phase = None;
    let mut last_ack = Instant::now();
    for i in 0..n {
        if i == 40 {
            kill(&follower);
            phase = Some(0);
            last_ack = Instant::now();
        }
        if i == 100 {
            // The follower is back (restarted, caught up) before the leader goes.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                assert!(
                    Instant::now() < deadline,
                    "{follower} never came back\n{}",
                    log_tail()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let (_, now_leader) = leader().await;
            kill(&now_leader);
            phase = Some(1);
            last_ack = Instant::now();
        }
        let id = format!("CL-{i}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = post_report(&http, &ingress, "cluster", &id, "mui-ne").await;
            if r.as_ref().is_ok_and(|r| r.status() == 202) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never acknowledged: {r:?}\n{}",
                log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        acked.push(id);
        if let Some(p) = phase {
            gaps[p] = gaps[p].max(last_ack.elapsed());
        }
        last_ack = Instant::now();
    }
    println!(
        "longest wait for an acknowledgement: {:?} after a follower's loss, {:?} after the leader's",
        gaps[0], gaps[1]
    );
    // Publishing resumes (a hang detector, not a speed target: the pause is reported above
    // and in docs/deployment.md; it is 2-5 s here, the client's reconnection and its
    // publish asked again).
    assert!(
        gaps[0] < Duration::from_secs(15),
        "publishing resumed only after {:?} when a follower was lost\n{}",
        gaps[0],
        log_tail()
    );
    assert!(
        gaps[1] < Duration::from_secs(15),
        "publishing resumed only after {:?} when the leader was lost (election 4-9 s)\n{}",
        gaps[1],
        log_tail()
    );

    // Every acknowledged event exactly once on the stream (read by an independent client).
    let reader = lienthong_bus::StreamReader::new(
        lienthong_bus::ConnectSettings::resolve(Some(&data.join("credentials/auditor.env")))
            .unwrap()
            .connect("test-auditor")
            .await
            .unwrap(),
        Default::default(),
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for m in reader.read_all("FIELD_REPORTS", None).await.unwrap() {
        let ev = lienthong_bus::subscriber::decode_stored(&m, None).unwrap();
        if let Some(id) = ev.event.id().strip_prefix("cluster/") {
            *seen.entry(id.to_string()).or_default() += 1;
        }
    }
    for id in &acked {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id}: acknowledged, stored {:?} times",
            seen.get(id)
        );
    }
    assert_eq!(seen.len(), n);

    // The node is back, and the read models equal the totals plus what was published.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .map(|r| r.status());
        let stats = get("/api/v1/field-reports/stats").await;
        let k = get("/api/v1/kpi").await;
        if health.is_ok_and(|s| s == 200)
            && stats["total"].as_u64() == Some(all_time + n as u64)
            && k["documents"]["sent"] == totals["documents"]["outgoing"]
            && k["meetings"] == totals["meetings"]
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back: {stats}\n{}",
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("lienthong_component_restarts_total{component=\"nats-server\"} 2"),
        "{metrics}"
    );
}
