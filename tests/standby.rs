//! A standby centre: a site on another server mirrors every stream and bucket of the centre
//! while the city works; the centre is then lost for good in the middle of a stream of
//! reports, and the standby is promoted and run as the centre. Measured: what was lost
//! (RPO) and how long it took to answer again (RTO).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::up::{
    free_port, ingress_caller, json_or_null, lienthong, lienthong_status, post_report, settled_kpi,
    wait_for, SiteUp, Up,
};
use serde_json::Value;

/// Posts reports one after another until stopped, each until it is acknowledged; records
/// each acknowledged id with when it was acknowledged.
struct Writer {
    stop: tokio::sync::watch::Sender<bool>,
    acked: Arc<Mutex<Vec<(String, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(caller: BTreeMap<String, String>, prefix: &'static str) -> Self {
        let http = reqwest::Client::new();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let acked: Arc<Mutex<Vec<(String, Instant)>>> = Default::default();
        let record = acked.clone();
        let task = tokio::spawn(async move {
            for n in 0.. {
                let id = format!("{}-{n:05}", prefix.to_uppercase());
                loop {
                    if *stop_rx.borrow() {
                        return;
                    }
                    let answer = post_report(&http, &caller, prefix, &id, "mui-ne").await;
                    if answer.is_ok_and(|r| r.status() == 202) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                record
                    .lock()
                    .unwrap()
                    .push((format!("{prefix}/{id}"), Instant::now()));
            }
        });
        Self { stop, acked, task }
    }

    async fn finish(self) -> Vec<(String, Instant)> {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// The standby's own streams as its operator sees them: name → (messages, last sequence).
async fn local_streams(data: &std::path::Path) -> BTreeMap<String, (u64, u64)> {
    let env = data.join("credentials/operator.env");
    let Ok(settings) = lienthong_bus::ConnectSettings::resolve(Some(&env)) else {
        return BTreeMap::new();
    };
    let Ok(client) = settings.connect("test-standby").await else {
        return BTreeMap::new();
    };
    let js = async_nats::jetstream::new(client);
    let mut out = BTreeMap::new();
    let mut names = js.stream_names();
    use futures::StreamExt as _;
    while let Some(Ok(name)) = names.next().await {
        if let Ok(mut s) = js.get_stream(&name).await {
            if let Ok(i) = s.info().await {
                out.insert(name, (i.state.messages, i.state.last_sequence));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_centre_lost_mid_publish_the_standby_is_promoted_with_nothing_but_the_last_instant_lost(
) {
    let leaf = free_port();
    let hub = Up::start(&[
        "--demo",
        "--demo-scale",
        "0.02",
        "--leaf-port",
        &leaf.to_string(),
    ]);
    let http = reqwest::Client::new();
    settled_kpi(&http, &hub).await;
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p).to_str().unwrap().to_string();
    let cred = |f: &str| hub.credentials(f).to_str().unwrap().to_string();
    let operator = cred("operator.env");

    // The operator keeps a backup with the secrets (roles' passwords, audit key), encrypted
    // to a key kept apart: the promoted centre takes them.
    let recipient = lienthong(&["backup", "key", "--out", &path("backup.key")]);
    let recipient = recipient.lines().next().unwrap().trim().to_string();
    lienthong(&[
        "--env",
        &operator,
        "backup",
        "--out",
        &path("b"),
        "--secrets-from",
        hub.data.to_str().unwrap(),
        "--recipient",
        &recipient,
    ]);

    // The standby, registered by the operator, runs on its own server.
    let out = lienthong(&[
        "site", "add", "du-phong", "--domain", "duphong", "--role", "standby", "--env", &operator,
    ]);
    assert!(out.contains("mirror every stream and bucket"), "{out}");
    let mut standby = SiteUp::start(&[
        "--role",
        "standby",
        "--name",
        "du-phong",
        "--domain",
        "duphong",
        "--hub",
        &format!("nats-leaf://127.0.0.1:{leaf}"),
        "--env",
        &cred("site-du-phong.env"),
    ]);
    let hub_streams = {
        let operator_client =
            lienthong_bus::ConnectSettings::resolve(Some(std::path::Path::new(&operator)))
                .unwrap()
                .connect("test-hub")
                .await
                .unwrap();
        let js = async_nats::jetstream::new(operator_client);
        // A stream made after the standby started is mirrored too.
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "LATE_ARRIVAL".into(),
            subjects: vec!["late.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("late.one", "hello".into())
            .await
            .unwrap()
            .await
            .unwrap();
        use futures::TryStreamExt as _;
        js.stream_names()
            .try_collect::<Vec<String>>()
            .await
            .unwrap()
    };
    let data = standby.data.clone();
    wait_for(
        "every stream of the centre mirrored by the standby",
        Duration::from_secs(90),
        || {
            let (data, hub_streams) = (data.clone(), hub_streams.clone());
            async move {
                let here = local_streams(&data).await;
                hub_streams.iter().all(|s| here.contains_key(s))
                    && here.get("LATE_ARRIVAL").is_some_and(|(m, _)| *m == 1)
            }
        },
        || standby.log_tail(20),
    )
    .await;
    // Its record holds the centre's configuration of each stream.
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("standby.json")).unwrap()).unwrap();
    assert_eq!(
        record["streams"]["FIELD_REPORTS"]["subjects"][0],
        "egov.field_reports.>"
    );

    // Reports keep arriving at the centre; the standby follows.
    let writer = Writer::start(ingress_caller(&hub.credentials("ingress-demo.env")), "dr");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held_before = local_streams(&data).await["FIELD_REPORTS"].0;
    let ids_before_loss = hub.stored_ids("FIELD_REPORTS").await;
    assert!(held_before > 0);

    // The centre's machine is lost: its server and everything on it killed at once.
    let pid = |f: &std::path::Path| std::fs::read_to_string(f).unwrap().trim().to_string();
    let server_pid = pid(&hub.data.join("nats/nats-server.pid"));
    let lost_at = Instant::now();
    for p in [server_pid, hub.pid().to_string()] {
        std::process::Command::new("kill")
            .args(["-KILL", &p])
            .status()
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = writer.finish().await;
    assert!(
        acked.len() > 10,
        "the writer was not writing: {}",
        acked.len()
    );

    // A promotion while the standby's site still runs on its folder is refused.
    let (ok, out) = lienthong_status(&["standby", "promote", "--data", data.to_str().unwrap()]);
    assert!(!ok && out.contains("still running"), "{out}");
    standby.stop();

    // Promoted onto a copy of the standby's folder (the standby's machine), then run as the
    // centre with the demo's adapters, which resume from their mirrored cursors.
    let promotion = Mutex::new(Value::Null);
    let promote_started = Instant::now();
    let centre = Up::start_after(&["--demo", "--demo-scale", "0.02"], |new| {
        let status = std::process::Command::new("cp")
            .args(["-a", data.to_str().unwrap(), new.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = lienthong(&[
            "standby",
            "promote",
            "--data",
            new.to_str().unwrap(),
            "--secrets",
            &path("b"),
            "--identity",
            &path("backup.key"),
            "--json",
        ]);
        // The report on stdout, then the log on stderr.
        let report = serde_json::Deserializer::from_str(&out)
            .into_iter::<Value>()
            .next()
            .unwrap()
            .unwrap();
        *promotion.lock().unwrap() = report;
    });
    let promote_s = promote_started.elapsed().as_secs_f64();
    wait_for(
        "the promoted centre healthy",
        Duration::from_secs(120),
        || {
            let url = format!("{}/healthz", centre.base);
            let http = http.clone();
            async move { json_or_null(&http, url).await["status"] == "ok" }
        },
        || centre.log_tail(25),
    )
    .await;
    let rto = promote_started.elapsed().as_secs_f64();
    let promotion = promotion.into_inner().unwrap();

    // What was acknowledged and is not on the promoted centre: only the last instant before
    // the loss (a suffix of what was acknowledged, nothing in the middle), nothing twice.
    let ids = centre.stored_ids("FIELD_REPORTS").await;
    let lost: Vec<&(String, Instant)> = acked
        .iter()
        .filter(|(id, _)| !ids.contains_key(id))
        .collect();
    if let Some(first) = lost.first() {
        let from = acked.iter().position(|(id, _)| id == &first.0).unwrap();
        assert_eq!(
            lost.len(),
            acked.len() - from,
            "lost in the middle: {lost:?}"
        );
    }
    let rpo = lost
        .first()
        .map(|(_, at)| lost_at.saturating_duration_since(*at).as_secs_f64())
        .unwrap_or(0.0);
    for (id, _) in &acked[..acked.len() - lost.len()] {
        assert_eq!(ids.get(id), Some(&1), "{id}");
    }
    for (id, n) in &ids {
        assert_eq!(*n, 1, "{id} stored {n} times");
    }
    for id in ids_before_loss.keys() {
        assert!(ids.contains_key(id), "{id}: on the centre before the loss");
    }
    eprintln!(
        "standby: {} acknowledged by the centre, {} of them lost with it (RPO {rpo:.3} s), promotion {promote_s:.2} s, healthy {rto:.2} s after the promotion began; {}",
        acked.len(),
        lost.len(),
        promotion["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["lag"].as_u64() > Some(0) || !s["lost_checkpointed"].is_null())
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );

    // The history checks with the centre's own audit key; the chains go on from the standby.
    let public_key = work.path().join("audit-public.key");
    std::fs::copy(hub.data.join("audit-public.key"), &public_key).unwrap();
    let caller = ingress_caller(&centre.credentials("ingress-demo.env"));
    assert_eq!(
        caller["LIENTHONG_INGRESS_TOKEN"],
        ingress_caller(&hub.credentials("ingress-demo.env"))["LIENTHONG_INGRESS_TOKEN"],
        "the centre's callers keep their tokens"
    );
    let after = post_report(&http, &caller, "after", "AFTER-1", "mui-ne")
        .await
        .unwrap();
    assert_eq!(after.status(), 202);
    // A chain resumed after checkpoints that covered lost events must be accepted by name.
    let resumed = promotion["streams"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| !s["lost_checkpointed"].is_null());
    let auditor = centre.credentials("auditor.env");
    let verify = |accept: bool| {
        let mut args = vec![
            "--env",
            auditor.to_str().unwrap(),
            "audit",
            "verify",
            "--public-key",
            public_key.to_str().unwrap(),
        ];
        if accept {
            args.push("--accept-resumed");
        }
        lienthong_status(&args)
    };
    wait_for(
        "audit verify passes on the promoted centre",
        Duration::from_secs(60),
        || {
            let (ok, out) = verify(true);
            async move { ok && out.contains("FIELD_REPORTS: intact") }
        },
        || verify(true).1,
    )
    .await;
    let (ok, out) = verify(false);
    assert_eq!(ok, !resumed, "{out}");
    assert_eq!(out.contains("RESUMED after a loss"), resumed, "{out}");

    // The demo's adapters resumed from their cursors: nothing they had published is there
    // twice in any stream.
    settled_kpi(&http, &centre).await;
    for stream in ["DOCUMENTS", "SSO", "MEETINGS", "FIELD_REPORTS"] {
        for (id, n) in centre.stored_ids(stream).await {
            assert_eq!(n, 1, "{stream}: {id} stored {n} times");
        }
    }
    // Agencies read with the credentials they had.
    let agency = centre.credentials("agency-urban.env");
    let out = lienthong(&[
        "--env",
        agency.to_str().unwrap(),
        "tail",
        "FIELD_REPORTS",
        "--all",
        "--no-follow",
        "--json",
    ]);
    assert!(out.lines().any(|l| l.starts_with('{')), "{out}");
}
