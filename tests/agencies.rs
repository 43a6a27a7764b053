//! Agencies against real servers: added, changed, rotated and revoked on a running server
//! (no restart), each reading only its grant from its own account, nobody able to touch
//! another role's consumers, and the registry surviving a restart as events.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use common::Bus;
use futures::StreamExt;
use lienthong_bus::agencies::{grants, Grant};
use lienthong_bus::{BusError, StreamReader};

fn grant(streams: &[&str], subjects: &[&str]) -> Vec<Grant> {
    grants(
        &streams.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        &subjects.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    )
    .unwrap()
}

async fn publish(bus: &Bus, subjects: &[&str]) {
    let op = bus.js("operator").await;
    for s in subjects {
        op.publish(s.to_string(), Bytes::from(format!("{{\"at\":\"{s}\"}}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// Waits until `stream` holds `n` messages as `reader` sees it; returns how long it took.
async fn wait_for(reader: &StreamReader, stream: &str, n: u64) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(s) = reader.state(stream).await {
            if s.messages >= n {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{stream} did not reach {n} messages in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_forbidden(e: &BusError, role: &str, what: &str) -> bool {
    matches!(e, BusError::Forbidden { role: r, what: w, .. } if r == role && w.contains(what))
}

#[tokio::test]
async fn an_agency_added_on_a_running_server_reads_its_grant_and_nothing_else() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    publish(
        &bus,
        &[
            "egov.field_reports.report.A.submitted",
            "egov.field_reports.report.A.status_changed",
            "egov.sso.session.X.started",
        ],
    )
    .await;

    let added = Instant::now();
    let files = agencies
        .admin
        .add("health", grant(&["FIELD_REPORTS"], &[]), None)
        .await
        .unwrap();
    let env = std::fs::read_to_string(&files.agency).unwrap();
    assert!(env.contains("NATS_USER=agency-health"));
    assert!(env.contains("NATS_INBOX_PREFIX=_INBOX.agency-health"));

    // Within 10 s an independent connection with the file reads the granted stream, equal
    // to the bus's, by direct get and through a durable consumer of its own.
    let (client, refusals) = bus.connect_env(&files.agency).await;
    let reader = StreamReader::new(client.clone(), refusals.clone());
    wait_for(&reader, "FIELD_REPORTS", 2).await;
    assert!(added.elapsed() < Duration::from_secs(10));
    let copy = reader.read_all("FIELD_REPORTS", None).await.unwrap();
    let origin = bus
        .reader("operator")
        .await
        .read_all("FIELD_REPORTS", None)
        .await
        .unwrap();
    assert_eq!(
        copy.iter()
            .map(|m| (m.subject.clone(), m.payload.clone()))
            .collect::<Vec<_>>(),
        origin
            .iter()
            .map(|m| (m.subject.clone(), m.payload.clone()))
            .collect::<Vec<_>>()
    );
    let js = jetstream::new(client.clone());
    let c = js
        .get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("health-reports".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = c
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut got = 0;
    while let Some(m) = batch.next().await {
        m.unwrap().ack().await.unwrap();
        got += 1;
    }
    assert_eq!(got, 2);

    // Everything else is refused at once, naming the role and what it may not do.
    let quick = Instant::now();
    let e = reader.last_sequence("SSO").await.unwrap_err();
    assert!(
        is_forbidden(&e, "agency-health", "read stream SSO"),
        "{e:?}"
    );
    let e = refusals
        .guard(async {
            Ok::<_, BusError>(
                js.publish("egov.field_reports.report.B.submitted", "{}".into())
                    .await
                    .unwrap()
                    .await,
            )
        })
        .await
        .unwrap_err();
    assert!(
        is_forbidden(&e, "agency-health", "publish egov.field_reports events"),
        "{e}"
    );
    let e = refusals
        .guard(async {
            Ok::<_, BusError>(
                client
                    .request(
                        "$JS.EGOV.API.CONSUMER.CREATE.SSO.x.egov.sso.>",
                        Bytes::from_static(b"{}"),
                    )
                    .await,
            )
        })
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::Forbidden { .. }), "{e}");
    let e = refusals
        .guard(async { Ok::<_, BusError>(js.delete_stream("FIELD_REPORTS").await.is_ok()) })
        .await
        .unwrap_err();
    assert!(
        is_forbidden(&e, "agency-health", "delete stream FIELD_REPORTS"),
        "{e}"
    );
    assert!(quick.elapsed() < Duration::from_secs(5));
    assert_eq!(
        bus.messages("FIELD_REPORTS").await,
        2,
        "nothing was published"
    );
}

/// The consumer operations another role might try on `stream`/`consumer`.
fn consumer_attempts(stream: &str, consumer: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
            String::new(),
        ),
        (
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            r#"{"batch":1,"expires":200000000}"#.into(),
        ),
        (format!("$JS.API.CONSUMER.NAMES.{stream}"), "{}".into()),
        (
            format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
            format!(
                r#"{{"stream_name":"{stream}","config":{{"name":"{consumer}","durable_name":"{consumer}","ack_policy":"none","deliver_policy":"all"}}}}"#
            ),
        ),
        (
            format!("$JS.API.CONSUMER.DELETE.{stream}.{consumer}"),
            String::new(),
        ),
        (
            format!("$JS.ACK.{stream}.{consumer}.1.1.1.1.0"),
            String::new(),
        ),
    ]
}

#[tokio::test]
async fn no_other_role_can_read_ack_change_list_or_delete_another_roles_consumers() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    publish(
        &bus,
        &[
            "egov.field_reports.report.A.submitted",
            "egov.field_reports.report.B.submitted",
            "egov.field_reports.report.C.submitted",
        ],
    )
    .await;
    let health = agencies
        .admin
        .add("health", grant(&["FIELD_REPORTS"], &[]), None)
        .await
        .unwrap();
    let other = agencies
        .admin
        .add("other", grant(&["FIELD_REPORTS"], &[]), None)
        .await
        .unwrap();

    // The agency's durable: one message read and acknowledged, two pending.
    let (hc, hr) = bus.connect_env(&health.agency).await;
    wait_for(&StreamReader::new(hc.clone(), hr), "FIELD_REPORTS", 3).await;
    let hjs = jetstream::new(hc.clone());
    let mine = hjs
        .get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("mine".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut b = mine.fetch().max_messages(1).messages().await.unwrap();
    b.next().await.unwrap().unwrap().double_ack().await.unwrap();
    // The replay service's durable on the bus's stream.
    let rjs = bus.js("replay").await;
    rjs.get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("replay-x".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    // Every role of the bus account but the operator and the replay service: refused.
    for role in [
        "auditor",
        "ingress",
        "deliver",
        "adapter-field_reports",
        "adapter-sso",
    ] {
        let (client, refusals) = bus
            .creds
            .settings(role, &bus.server.url())
            .unwrap()
            .connect_watched("test-intruder")
            .await
            .unwrap();
        for consumer in ["replay-x", "mine"] {
            for (subject, body) in consumer_attempts("FIELD_REPORTS", consumer) {
                let attempt = refusals
                    .guard(async {
                        tokio::time::timeout(
                            Duration::from_secs(3),
                            client.request(subject.clone(), body.clone().into()),
                        )
                        .await
                        .map_err(|_| BusError::Config("no answer".into()))?
                        .map_err(|e| BusError::Config(e.to_string()))
                    })
                    .await;
                // Acks are fire-and-forget: a refusal or no answer; never a success.
                match attempt {
                    Err(BusError::Forbidden { role: r, .. }) => assert_eq!(r, role),
                    other => panic!("{role} on {subject}: {other:?}"),
                }
            }
        }
    }
    // Another agency: in its own account there is no such consumer, and it lists only its own.
    let (oc, or) = bus.connect_env(&other.agency).await;
    wait_for(
        &StreamReader::new(oc.clone(), or.clone()),
        "FIELD_REPORTS",
        3,
    )
    .await;
    let ojs = jetstream::new(oc.clone());
    let ostream = ojs.get_stream("FIELD_REPORTS").await.unwrap();
    assert!(ostream
        .get_consumer::<consumer::pull::Config>("mine")
        .await
        .is_err());
    assert!(ostream.delete_consumer("mine").await.is_err());
    let names: Vec<String> = ostream.consumer_names().map(|n| n.unwrap()).collect().await;
    assert!(names.is_empty(), "{names:?}");
    let e = or
        .guard(async {
            Ok::<_, BusError>(
                oc.request(
                    "$JS.API.CONSUMER.INFO.SSO.replay-x".to_string(),
                    Bytes::new(),
                )
                .await,
            )
        })
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::Forbidden { .. }), "{e}");

    // Untouched: the agency's position and the replay service's durable.
    let info = hjs
        .get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .get_consumer::<consumer::pull::Config>("mine")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.ack_floor.stream_sequence, 1);
    assert_eq!(info.num_pending, 2);
    assert_eq!(info.num_ack_pending, 0);
    let replay = rjs
        .get_stream("FIELD_REPORTS")
        .await
        .unwrap()
        .get_consumer::<consumer::pull::Config>("replay-x")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(replay.num_pending, 3);
    assert_eq!(replay.delivered.stream_sequence, 0);
}

#[tokio::test]
async fn subject_filters_are_enforced_by_the_server_and_grants_change_while_it_runs() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    publish(
        &bus,
        &[
            "egov.field_reports.report.A.submitted",
            "egov.field_reports.report.A.reopened",
            "egov.open_data.dataset.D.published",
        ],
    )
    .await;
    let files = agencies
        .admin
        .add(
            "roads",
            grant(
                &["FIELD_REPORTS"],
                &["egov.field_reports.report.*.reopened"],
            ),
            None,
        )
        .await
        .unwrap();
    let (client, refusals) = bus.connect_env(&files.agency).await;
    let reader = StreamReader::new(client.clone(), refusals.clone());
    wait_for(&reader, "FIELD_REPORTS", 1).await;
    let subjects = |ms: Vec<lienthong_bus::reader::StoredMessage>| {
        ms.into_iter().map(|m| m.subject).collect::<Vec<_>>()
    };
    assert_eq!(
        subjects(reader.read_all("FIELD_REPORTS", None).await.unwrap()),
        vec!["egov.field_reports.report.A.reopened"]
    );

    // Even the account's administrator cannot widen the copy: the bus account exports
    // consumer creation with the granted filter only.
    let admin = agencies.admin.admin_js("roads").await.unwrap();
    let mut wider = lienthong_bus::agencies::admin::copy_config(
        "roads",
        &Grant {
            stream: "FIELD_REPORTS".into(),
            subjects: vec![],
        },
    );
    wider.name = "WIDER".into();
    admin.create_stream(wider).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut s = admin.get_stream("WIDER").await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 0);
    admin.delete_stream("WIDER").await.unwrap();

    // A filter added beside the old one: the copy grows in place, past events included.
    let rebuilt = agencies
        .admin
        .grant(
            "roads",
            grant(
                &["FIELD_REPORTS"],
                &[
                    "egov.field_reports.report.*.reopened",
                    "egov.field_reports.report.*.submitted",
                ],
            ),
            None,
        )
        .await
        .unwrap();
    assert!(rebuilt.is_empty(), "{rebuilt:?}");
    wait_for(&reader, "FIELD_REPORTS", 2).await;
    let mut held = subjects(reader.read_all("FIELD_REPORTS", None).await.unwrap());
    held.sort();
    assert_eq!(
        held,
        vec![
            "egov.field_reports.report.A.reopened",
            "egov.field_reports.report.A.submitted"
        ]
    );

    // Widened to the whole stream: rebuilt, it holds every field report, each once.
    publish(&bus, &["egov.field_reports.report.B.reopened"]).await;
    let rebuilt = agencies
        .admin
        .grant("roads", grant(&["FIELD_REPORTS"], &[]), None)
        .await
        .unwrap();
    assert_eq!(
        rebuilt,
        vec!["FIELD_REPORTS"],
        "what it held no longer matched"
    );
    wait_for(&reader, "FIELD_REPORTS", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        subjects(reader.read_all("FIELD_REPORTS", None).await.unwrap()),
        vec![
            "egov.field_reports.report.A.submitted",
            "egov.field_reports.report.A.reopened",
            "egov.field_reports.report.B.reopened"
        ]
    );
    // Moved to open data only: the field-report copy is gone and refused.
    agencies
        .admin
        .grant("roads", grant(&["OPEN_DATA"], &[]), None)
        .await
        .unwrap();
    wait_for(&reader, "OPEN_DATA", 1).await;
    let start = Instant::now();
    loop {
        match reader.last_sequence("FIELD_REPORTS").await {
            Err(e) if is_forbidden(&e, "agency-roads", "read stream FIELD_REPORTS") => break,
            _ if start.elapsed() > Duration::from_secs(10) => panic!("still readable"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let history = agencies.admin.registry().await.unwrap().history;
    assert_eq!(
        history
            .iter()
            .map(|c| c.change.as_str())
            .collect::<Vec<_>>(),
        vec!["granted", "granted", "granted", "granted"]
    );

    // A filter that matches no event of its stream (a typo) is refused before anything
    // is recorded, and says which subjects the stream has.
    let e = agencies
        .admin
        .grant(
            "roads",
            grant(&["FIELD_REPORTS"], &["egov.field_reports.report.*.resolvd"]),
            None,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("matches no event of FIELD_REPORTS"), "{e}");
    assert!(
        e.contains("egov.field_reports.report.*.status_changed"),
        "{e}"
    );
    assert_eq!(agencies.admin.registry().await.unwrap().history.len(), 4);
}

#[tokio::test]
async fn two_operators_adding_the_same_agency_at_once_give_one_agency() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = bus.agency_admin(other_dir.path()).await;
    let (a, b) = tokio::join!(
        agencies
            .admin
            .add("parks", grant(&["FIELD_REPORTS"], &[]), None),
        other.add("parks", grant(&["OPEN_DATA"], &[]), None),
    );
    let failed = match (&a, &b) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e.to_string(),
        _ => panic!(
            "exactly one add must win: {:?} / {:?}",
            a.is_ok(),
            b.is_ok()
        ),
    };
    assert!(
        failed.contains("changed by someone else") || failed.contains("exists"),
        "{failed}"
    );
    let registry = agencies.admin.registry().await.unwrap();
    assert_eq!(
        registry
            .history
            .iter()
            .filter(|c| c.agency == "parks")
            .count(),
        1
    );
    // The winner's credentials work and read the winner's grant.
    let (files, stream) = match a {
        Ok(f) => (f, "FIELD_REPORTS"),
        Err(_) => (b.unwrap(), "OPEN_DATA"),
    };
    assert_eq!(registry.agencies["parks"].grants[0].stream, stream);
    let (client, refusals) = bus.connect_env(&files.agency).await;
    let reader = StreamReader::new(client, refusals);
    reader.last_sequence(stream).await.unwrap();
}

/// Waits until `client` is disconnected (it may not come back).
async fn wait_disconnected(client: &async_nats::Client, within: Duration) -> Duration {
    let start = Instant::now();
    while client.connection_state() == async_nats::connection::State::Connected {
        assert!(start.elapsed() < within, "still connected after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn revoking_cuts_an_agency_off_and_rotating_replaces_its_password() {
    let bus = Bus::start().await;
    let dir = tempfile::tempdir().unwrap();
    let agencies = bus.agencies(dir.path()).await;
    let temp = agencies
        .admin
        .add("temp", grant(&["SSO"], &[]), None)
        .await
        .unwrap();
    let settings = lienthong_bus::ConnectSettings::resolve(Some(&temp.agency)).unwrap();
    let (client, _) = bus.connect_env(&temp.agency).await;
    let revoked = Instant::now();
    agencies
        .admin
        .revoke("temp", Some("test".into()))
        .await
        .unwrap();
    wait_disconnected(&client, Duration::from_secs(10)).await;
    assert!(revoked.elapsed() < Duration::from_secs(10));
    assert!(settings.connect("test-revoked").await.is_err());
    assert!(!temp.agency.exists(), "its credentials file is removed");
    assert!(agencies.admin.registry().await.unwrap().agencies.is_empty());

    let rot = agencies
        .admin
        .add("rot", grant(&["SSO"], &[]), None)
        .await
        .unwrap();
    let old = lienthong_bus::ConnectSettings::resolve(Some(&rot.agency)).unwrap();
    let (client, _) = bus.connect_env(&rot.agency).await;
    agencies.admin.rotate("rot").await.unwrap();
    wait_disconnected(&client, Duration::from_secs(10)).await;
    assert!(old.connect("test-old-password").await.is_err());
    let (fresh, _) = bus.connect_env(&rot.agency).await;
    assert_eq!(
        fresh.connection_state(),
        async_nats::connection::State::Connected
    );
}

#[tokio::test]
async fn the_registry_survives_a_restart_and_says_who_could_read_a_stream_when() {
    let store = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = lienthong_bus::CredentialSet::generate();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (before, files_b) = {
        let bus = Bus::start_in(store.path(), creds.clone(), port).await;
        let agencies = bus.agencies(dir.path()).await;
        publish(&bus, &["egov.field_reports.report.A.submitted"]).await;
        agencies
            .admin
            .add(
                "first",
                grant(&["FIELD_REPORTS"], &[]),
                Some("decision 12/QĐ".into()),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = chrono::Utc::now();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let files_b = agencies
            .admin
            .add("second", grant(&["FIELD_REPORTS"], &[]), None)
            .await
            .unwrap();
        agencies.admin.revoke("first", None).await.unwrap();
        drop(agencies);
        bus.server.stop().await.unwrap();
        (before, files_b)
    };
    // The same server again, from its store: the grants are still there and work at once.
    let bus = Bus::start_in(store.path(), creds, port).await;
    let (client, refusals) = bus.connect_env(&files_b.agency).await;
    let reader = StreamReader::new(client, refusals);
    wait_for(&reader, "FIELD_REPORTS", 1).await;
    let agencies = bus.agencies(dir.path()).await;
    let now = agencies.admin.registry().await.unwrap();
    assert_eq!(now.agencies.keys().collect::<Vec<_>>(), vec!["second"]);
    // As of a past instant: only `first` could read field reports, with its note's grant.
    let then = agencies.admin.registry_at(before).await.unwrap();
    let readers: Vec<&str> = then
        .readers_of("FIELD_REPORTS")
        .iter()
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert_eq!(readers, vec!["first"]);
    assert_eq!(then.history[0].by, "tests@localhost (as operator)");
    // The registry's events are valid CloudEvents of their schemas, read by the auditor.
    let auditor = bus.reader("auditor").await;
    let events = auditor.read_all("AGENCIES", None).await.unwrap();
    assert_eq!(events.len(), 3);
    for m in &events {
        lienthong_bus::subscriber::decode_stored(m, Some(&bus.registry)).unwrap();
        let text = String::from_utf8_lossy(&m.payload);
        assert!(!text.contains("$2"), "no password hash on the bus: {text}");
    }
}
