//! Supervision under `lienthong up`: a nats-server killed with SIGKILL is noticed, reported by
//! `/healthz` (503, naming it) while it is down, started again on the same store, and the bus
//! goes on: nothing stored is lost, clients reconnect, new events flow to the read models.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Up(std::process::Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

#[tokio::test]
async fn a_killed_nats_server_is_restarted_on_its_store_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (nats, http_port, ingress_port) = (free_port(), free_port(), free_port());
    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let mut up = Up(Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["up", "--demo", "--demo-scale", "0.02"])
        .args(["--nats-port", &nats.to_string()])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .args(["--ingress", &format!("127.0.0.1:{ingress_port}")])
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap());
    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::new();
    let log_tail = || {
        let log = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
        log.lines().rev().take(25).collect::<Vec<_>>().join("\n")
    };
    let kpi = async || -> Value {
        match http.get(format!("{base}/api/v1/kpi")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    };

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
            log_tail()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let sequences = before["stream_sequences"].clone();

    // SIGKILL the server `up` started.
    let pids = Command::new("pgrep")
        .args(["-P", &up.0.id().to_string(), "nats-server"])
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
    let down = saw_down
        .unwrap_or_else(|| panic!("/healthz never said the server was down\n{}", log_tail()));
    assert!(
        down["down"]["nats-server"]
            .as_str()
            .unwrap()
            .contains("exited"),
        "{down}"
    );
    assert!(healthy, "/healthz never recovered\n{}", log_tail());
    assert!(up.0.try_wait().unwrap().is_none(), "up is still running");
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
    let ingress =
        lienthong_bus::credentials::read_env_file(&data.join("credentials/ingress-demo.env"))
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .post(&ingress["LIENTHONG_INGRESS_URL"])
            .bearer_auth(&ingress["LIENTHONG_INGRESS_TOKEN"])
            .header("content-type", "application/cloudevents+json")
            .body(
                json!({
                    "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
                    "source": ingress["LIENTHONG_INGRESS_SOURCE"], "id": "after-restart/1",
                    "subject": "AFTER-RESTART-1", "time": "2023-12-30T01:00:00Z",
                    "datacontenttype": "application/json",
                    "data": {"report_id": "AFTER-RESTART-1", "category": "HTGT",
                        "category_name": "Hạ tầng giao thông", "ward": "mui-ne", "status": "open",
                        "description": "Ổ gà", "requested_at": "2023-12-30T08:00:00+07:00"}
                })
                .to_string(),
            )
            .send()
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
            log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
