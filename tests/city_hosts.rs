//! A small city on separate network hosts: `lienthong deploy plan` writes the bundles of three
//! hub nodes, a ward site, an agency site and a witness, and each bundle's `run` starts on a
//! Linux network namespace of its own (made and removed here; addresses only inside them).
//! Under continuous publishing, at the hub's ingress and at the ward's:
//! - a capture of every frame between the hosts holds no password, token or the marker
//!   carried in the events' data (and does hold a plaintext control sent on purpose);
//! - a client without the CA, a site with a certificate from another CA and a plaintext
//!   connection are refused, each with its reason;
//! - a hub node isolated for 30 s: the majority keeps acknowledging, the isolated node takes
//!   no write, and it catches up after; the ward isolated for 30 s then its link flapping for
//!   a minute: the ward keeps storing, the hub ends with every acknowledged event once, and
//!   the agency site answers from its copy throughout;
//! - afterwards nothing acknowledged is lost or doubled, the read models equal a fresh
//!   rebuild, and `audit verify` passes, also against the witness.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{find, Capture, Hosts};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::ConnectSettings;
use serde_json::{json, Value};

const LIENTHONG: &str = env!("CARGO_BIN_EXE_lienthong");

/// The event an isolated hub node is asked to store (and must not acknowledge).
const ISOLATED_ID: &str = "isolated/PT-ISOLATED";

/// How long a hub node, then the ward, stays cut off; how long the ward's link flaps.
const ISOLATION: Duration = Duration::from_secs(30);
const FLAPPING: Duration = Duration::from_secs(60);

fn inventory() -> String {
    format!(
        r#"city = "Phan Thiết (namespaces)"
[[hub]]
name = "n1"
address = "{s}.11"
[[hub]]
name = "n2"
address = "{s}.12"
[[hub]]
name = "n3"
address = "{s}.13"
[[site]]
name = "phu-thuy"
role = "ward"
domain = "phuthuy"
address = "{s}.21"
[[site]]
name = "xay-dung"
role = "agency"
domain = "xaydung"
address = "{s}.31"
streams = ["FIELD_REPORTS"]
[[site]]
name = "kiem-toan"
role = "witness"
domain = "kiemtoan"
address = "{s}.41"
[[caller]]
name = "city-app"
sources = ["urn:lienthong:phanthiet:field_reports:city-app"]
types = ["vn.egov.field_reports.*"]
"#,
        s = common::netns::SUBNET
    )
}

fn env_of(path: &Path) -> BTreeMap<String, String> {
    lienthong_bus::credentials::read_env_file(path).unwrap()
}

fn https_client(ca: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Acknowledged events of one publisher: id and when.
type Acked = Arc<Mutex<Vec<(String, Instant)>>>;

/// A publisher: where it POSTs, as whom, what it stamps on its events.
struct Poster {
    url: String,
    token: String,
    source: String,
    prefix: &'static str,
    marker: String,
    ca: PathBuf,
}

/// POSTs report after report as `p` says until `stop`: ids `PREFIX/N`, the marker in each
/// description; records each acknowledged (2xx) one. Returns how many were not (and were
/// sent again).
async fn publish_loop(p: Poster, stop: Arc<AtomicBool>, acked: Acked) -> usize {
    let Poster {
        url,
        token,
        source,
        prefix,
        marker,
        ca,
    } = p;
    let http = https_client(&ca);
    let mut refused = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("PT-{prefix}-{n:06}");
        let body = json!({
            "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
            "source": source, "id": format!("{prefix}/{id}"), "subject": id,
            "time": "2023-12-30T01:00:00Z", "datacontenttype": "application/json",
            "data": {"report_id": id, "category": "HTGT", "category_name": "Hạ tầng giao thông",
                "ward": "phu-thuy", "status": "open", "description": format!("Ổ gà {marker}"),
                "requested_at": "2023-12-30T08:00:00+07:00"}
        });
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/cloudevents+json")
            .body(body.to_string())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                acked
                    .lock()
                    .unwrap()
                    .push((format!("{prefix}/{id}"), Instant::now()));
                n += 1;
            }
            // Not stored: sent again with the same id (the sender's duty).
            _ => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused
}

/// Every event id in `stream`, with how many times it is there: read by batched direct gets
/// (what the bus's readers use), and, if that fails, message by message from the stream's
/// leader (a replica still settling after a partition may leave direct gets unanswered).
async fn stored_ids(
    settings: &ConnectSettings,
    stream: &str,
) -> Result<BTreeMap<String, usize>, String> {
    let client = settings
        .connect("test-city-reader")
        .await
        .map_err(|e| e.to_string())?;
    let reader = lienthong_bus::StreamReader::new(client.clone(), Default::default());
    let direct = async {
        let mut out = BTreeMap::new();
        for m in reader
            .read_all(stream, None)
            .await
            .map_err(|e| e.to_string())?
        {
            let ev =
                lienthong_bus::subscriber::decode_stored(&m, None).map_err(|e| e.to_string())?;
            *out.entry(ev.event.id().to_string()).or_default() += 1;
        }
        Ok::<_, String>(out)
    };
    let direct_error = match direct.await {
        Ok(out) => return Ok(out),
        Err(e) => e,
    };
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let state = s.info().await.map_err(|e| e.to_string())?.state.clone();
    let mut out = BTreeMap::new();
    for seq in state.first_sequence..=state.last_sequence {
        let m = s
            .get_raw_message(seq)
            .await
            .map_err(|e| format!("direct gets: {direct_error}; from the leader, #{seq}: {e}"))?;
        let v: Value = serde_json::from_slice(&m.payload).map_err(|e| e.to_string())?;
        let id = v["id"]
            .as_str()
            .ok_or("an event without an id")?
            .to_string();
        *out.entry(id).or_default() += 1;
    }
    eprintln!("read {stream} from its leader (direct gets failed: {direct_error})");
    Ok(out)
}

/// The longest wait between two acknowledgements within `[from, to]`, and how many.
fn gaps(acked: &Acked, from: Instant, to: Instant) -> (Duration, usize) {
    let acks = acked.lock().unwrap();
    let times: Vec<Instant> = acks
        .iter()
        .map(|a| a.1)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    let mut longest = Duration::ZERO;
    let mut last = from;
    for t in &times {
        longest = longest.max(t.duration_since(last));
        last = *t;
    }
    longest = longest.max(to.duration_since(last));
    (longest, times.len())
}

/// The hub's logs that say why, for a failure's message.
fn logs(bundles: &Path) -> String {
    let mut out = String::new();
    for n in ["n1", "n2", "n3", "phu-thuy"] {
        for log in ["agent", "apply", "nats", "site"] {
            let text = std::fs::read_to_string(bundles.join(n).join(format!("logs/{log}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| log != "nats" || l.contains("[ERR]") || l.contains("[WRN]"))
                .collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- {n} {log}\n{}\n", tail.join("\n")));
        }
    }
    out
}

fn wait_until(what: &str, timeout: Duration, ok: impl FnMut() -> bool) -> Duration {
    wait_until_or(what, timeout, String::new, ok)
}

/// [`wait_until`], saying what `context` says when it fails.
fn wait_until_or(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    mut ok: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() >= timeout {
            panic!("{what}: not after {timeout:?}\n{}", context());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
    start.elapsed()
}

#[test]
fn a_city_on_separate_hosts_encrypts_every_link_and_loses_nothing_through_partitions() {
    let hosts = match Hosts::make(&[
        ("n1", 11),
        ("n2", 12),
        ("n3", 13),
        ("phu-thuy", 21),
        ("xay-dung", 31),
        ("kiem-toan", 41),
        ("op", 100),
    ]) {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "SKIPPED: network namespaces cannot be made here ({e}); this test needs root and iproute2"
            );
            return;
        }
    };
    let nats_bin = lienthong_bus::server::find_nats_server().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("city.toml"), inventory()).unwrap();
    let (ok, out) = hosts.run(
        "op",
        LIENTHONG,
        &[
            "deploy",
            "plan",
            root.join("city.toml").to_str().unwrap(),
            "--out",
            root.join("bundles").to_str().unwrap(),
            "--state",
            root.join("state").to_str().unwrap(),
        ],
    );
    assert!(ok, "deploy plan: {out}");
    let bundles = root.join("bundles");
    let state = root.join("state");
    let ca = state.join("pki/ca.crt");
    let operator_env = state.join("credentials/operator.env");

    // Everything that crosses the switch, from before the first host starts.
    let capture = Capture::start(&hosts.switch());
    let env = [
        ("LIENTHONG_BIN", LIENTHONG.to_string()),
        ("NATS_SERVER_BIN", nats_bin.display().to_string()),
    ];
    let mut running = Vec::new();
    for host in ["n1", "n2", "n3", "phu-thuy", "xay-dung", "kiem-toan"] {
        let run = bundles.join(host).join("run");
        running.push(hosts.spawn(host, run.to_str().unwrap(), &[], &env, None));
    }
    let check = || {
        hosts.run(
            "op",
            LIENTHONG,
            &[
                "deploy",
                "check",
                root.join("city.toml").to_str().unwrap(),
                "--env",
                operator_env.to_str().unwrap(),
            ],
        )
    };
    let started = Instant::now();
    loop {
        let (ok, out) = check();
        if ok {
            eprintln!(
                "deploy check passed {:.1} s after the hosts started:\n{out}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the city did not come up:\n{out}\n{}",
            logs(&bundles)
        );
        std::thread::sleep(Duration::from_secs(3));
    }

    // A plaintext control, sent on purpose: the capture would see what is not encrypted.
    let control = format!("PLAINTEXT-CONTROL-{}", std::process::id());
    {
        let (to, control) = (hosts.address("n2"), control.clone());
        hosts
            .thread("op", move || {
                Box::pin(async move {
                    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                    s.send_to(control.as_bytes(), format!("{to}:9")).unwrap();
                })
            })
            .join()
            .unwrap();
    }

    // Refused: a client without the CA, a plaintext connection, a site with another CA's
    // certificate.
    let operator = ConnectSettings::resolve(Some(&operator_env)).unwrap();
    let n1 = hosts.address("n1");
    let refusals = {
        let (operator, n1) = (operator.clone(), n1.clone());
        hosts
            .thread("op", move || {
                Box::pin(async move {
                    let mut no_ca = operator.clone();
                    no_ca.ca = None;
                    let without_ca = no_ca.connect("test-no-ca").await.unwrap_err().to_string();
                    let plain = tokio::task::spawn_blocking(move || {
                        use std::io::{Read, Write};
                        let mut s = std::net::TcpStream::connect(format!("{n1}:4222")).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut info = [0u8; 4096];
                        let n = s.read(&mut info).unwrap();
                        let _ = s.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n");
                        let mut rest = Vec::new();
                        let _ = s.read_to_end(&mut rest);
                        (
                            String::from_utf8_lossy(&info[..n]).to_string(),
                            String::from_utf8_lossy(&rest).to_string(),
                        )
                    })
                    .await
                    .unwrap();
                    (without_ca, plain)
                })
            })
            .join()
            .unwrap()
    };
    assert!(refusals.0.contains("NATS_CA"), "{}", refusals.0);
    assert!(
        refusals.1 .0.contains("\"tls_required\":true"),
        "{}",
        refusals.1 .0
    );
    assert!(
        !refusals.1 .1.contains("PONG"),
        "a plaintext client was served"
    );
    eprintln!("refused, a client without the CA: {}", refusals.0);
    eprintln!(
        "refused, a plaintext client: INFO says tls_required, and after its CONNECT: {:?}",
        refusals.1 .1.trim()
    );
    let rogue = {
        let rogue_ca =
            lienthong_bus::tls::pki::Authority::init(&root.join("rogue-pki"), "Rogue").unwrap();
        let issued = rogue_ca
            .issue(
                &lienthong_bus::tls::pki::IssueRequest {
                    name: "phu-thuy-link".into(),
                    usage: lienthong_bus::tls::pki::Usage::Client,
                    dns: vec![],
                    ips: vec![],
                    unit: Some("ward site".into()),
                    days: 90,
                },
                &root.join("rogue"),
            )
            .unwrap();
        let env_file = root.join("rogue.env");
        std::fs::write(
            &env_file,
            format!(
                "NATS_CERT={}\nNATS_KEY={}\nNATS_CA={}\n",
                issued.cert.display(),
                issued.key.display(),
                ca.display()
            ),
        )
        .unwrap();
        let hub = format!("nats-leaf://{n1}:7422");
        hosts.spawn(
            "op",
            LIENTHONG,
            &[
                "site",
                "up",
                "--name",
                "phu-thuy",
                "--domain",
                "phuthuy",
                "--hub",
                &hub,
                "--env",
                env_file.to_str().unwrap(),
                "--data",
                root.join("rogue-data").to_str().unwrap(),
                "--nats-port",
                "14223",
                "--ingress",
                "127.0.0.1:18091",
            ],
            &[],
            Some(&root.join("rogue.log")),
        )
    };

    // Continuous publishing: the city's app at the hub's ingress (on n1), the ward's systems
    // at the ward's own ingress.
    let marker = format!("MARKER-{:x}", rand::random::<u64>());
    let stop = Arc::new(AtomicBool::new(false));
    let (hub_acked, ward_acked): (Acked, Acked) = Default::default();
    let hub_token = std::fs::read_to_string(state.join("callers/city-app.token")).unwrap();
    let hub_pub = {
        let (stop, acked, marker, ca) =
            (stop.clone(), hub_acked.clone(), marker.clone(), ca.clone());
        let url = format!("https://{n1}:8090/events");
        let token = hub_token.trim().to_string();
        hosts.thread("op", move || {
            Box::pin(publish_loop(
                Poster {
                    url,
                    token,
                    source: "urn:lienthong:phanthiet:field_reports:city-app".into(),
                    prefix: "hub",
                    marker,
                    ca,
                },
                stop,
                acked,
            ))
        })
    };
    let ward_caller = env_of(&bundles.join("phu-thuy/data/credentials/ingress-site.env"));
    assert!(
        ward_caller["LIENTHONG_INGRESS_URL"].starts_with("https://"),
        "{ward_caller:?}"
    );
    let ward_pub = {
        let (stop, acked, marker, ca) =
            (stop.clone(), ward_acked.clone(), marker.clone(), ca.clone());
        let url = ward_caller["LIENTHONG_INGRESS_URL"].clone();
        let token = ward_caller["LIENTHONG_INGRESS_TOKEN"].clone();
        hosts.thread("phu-thuy", move || {
            Box::pin(publish_loop(
                Poster {
                    url,
                    token,
                    source: "urn:lienthong:phu-thuy:field_reports".into(),
                    prefix: "ward",
                    marker,
                    ca,
                },
                stop,
                acked,
            ))
        })
    };
    // The agency reads its own copy throughout: every answer, and the count it shows.
    let agency_reads: Arc<Mutex<Vec<Result<u64, String>>>> = Default::default();
    let agency_reader = {
        let (stop, reads, ca) = (stop.clone(), agency_reads.clone(), ca.clone());
        let url = format!("https://{}:8080/api/v1/kpi", hosts.address("xay-dung"));
        hosts.thread("xay-dung", move || {
            Box::pin(async move {
                let http = https_client(&ca);
                while !stop.load(Ordering::Relaxed) {
                    let r = match http.get(&url).send().await {
                        Ok(r) => match r.json::<Value>().await {
                            Ok(v) => v["field_reports"]["total"]
                                .as_u64()
                                .ok_or_else(|| format!("no total: {v}")),
                            Err(e) => Err(e.to_string()),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    reads.lock().unwrap().push(r);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        })
    };
    let rogue_log = || std::fs::read_to_string(root.join("rogue.log")).unwrap_or_default();
    wait_until(
        "the site with another CA's certificate says it is not linked",
        Duration::from_secs(60),
        || rogue_log().contains("not linked to the hub"),
    );
    assert!(
        !rogue_log().contains("INFO lienthong::site: linked"),
        "a site with another CA's certificate linked:\n{}",
        rogue_log()
    );
    let handshake: Vec<String> = ["n1", "n2", "n3"]
        .iter()
        .flat_map(|n| {
            std::fs::read_to_string(bundles.join(n).join("logs/nats.log"))
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    l.contains("TLS leafnode handshake error")
                        && l.contains(&format!("{}.100:", common::netns::SUBNET))
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !handshake.is_empty(),
        "the hub logged no refused leaf handshake"
    );
    eprintln!(
        "refused, a site with another CA's certificate: {}",
        handshake[0]
    );
    drop(rogue);

    // Partition 1: n3 cut off for 30 s.
    let cut = Instant::now();
    hosts.link("n3", false);
    let isolated_write = {
        let mut settings =
            ConnectSettings::resolve(Some(&state.join("credentials/ingress.env"))).unwrap();
        settings.url = format!("tls://{}:4222", hosts.address("n3"));
        hosts
            .thread("n3", move || {
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let client = settings
                        .connect("test-isolated")
                        .await
                        .map_err(|e| e.to_string())?;
                    let js = async_nats::jetstream::ContextBuilder::new()
                        .timeout(Duration::from_secs(10))
                        .build(client);
                    // A well-formed event with its message id, as the bus's publisher sends
                    // it: should it be stored after all, it is an event like any other.
                    let event = json!({
                        "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
                        "source": "urn:lienthong:phanthiet:field_reports:city-app",
                        "id": ISOLATED_ID, "subject": "PT-ISOLATED",
                        "time": "2023-12-30T01:00:00Z", "datacontenttype": "application/json",
                        "data": {"report_id": "PT-ISOLATED", "category": "HTGT",
                            "category_name": "Hạ tầng giao thông", "ward": "phu-thuy",
                            "status": "open", "description": "Ổ gà",
                            "requested_at": "2023-12-30T08:00:00+07:00"}
                    });
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", ISOLATED_ID);
                    headers.insert("Content-Type", "application/cloudevents+json");
                    match js
                        .publish_with_headers(
                            "egov.field_reports.report.PT-ISOLATED.submitted",
                            headers,
                            event.to_string().into(),
                        )
                        .await
                    {
                        Err(e) => Err(e.to_string()),
                        Ok(ack) => match ack.await {
                            Err(e) => Err(e.to_string()),
                            Ok(a) => Ok(format!("stored at {}", a.sequence)),
                        },
                    }
                })
            })
            .join()
            .unwrap()
    };
    assert!(
        isolated_write.is_err(),
        "the isolated node took a write: {isolated_write:?}"
    );
    eprintln!(
        "the isolated node took no write: {}",
        isolated_write.unwrap_err()
    );
    std::thread::sleep(ISOLATION.saturating_sub(cut.elapsed()));
    hosts.link("n3", true);
    let healed = Instant::now();
    let (longest, count) = gaps(&hub_acked, cut, healed);
    eprintln!(
        "n3 isolated {:.0} s: {count} events acknowledged at the hub meanwhile, longest wait for an acknowledgement {:.2} s",
        healed.duration_since(cut).as_secs_f64(),
        longest.as_secs_f64()
    );
    assert!(count > 0, "the majority stopped acknowledging");
    let caught_up = wait_until(
        "n3 caught up (every stream's replicas current)",
        Duration::from_secs(180),
        || check().0,
    );

    // Partition 2: the ward cut off for 30 s, then its link flapping for a minute.
    let ward_cut = Instant::now();
    let ward_before = ward_acked.lock().unwrap().len();
    hosts.link("phu-thuy", false);
    std::thread::sleep(ISOLATION);
    let flapping = Instant::now();
    let mut up = false;
    while flapping.elapsed() < FLAPPING {
        up = !up;
        hosts.link("phu-thuy", up);
        std::thread::sleep(Duration::from_secs(3));
    }
    hosts.link("phu-thuy", true);
    let ward_during = ward_acked.lock().unwrap().len() - ward_before;
    eprintln!(
        "the ward cut off 30 s then flapping 60 s: it stored {ward_during} events meanwhile ({:.0} s)",
        ward_cut.elapsed().as_secs_f64()
    );
    assert!(ward_during > 0, "the ward stopped storing while cut off");
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let hub_refused = hub_pub.join().unwrap();
    let ward_refused = ward_pub.join().unwrap();
    agency_reader.join().unwrap();

    // Afterwards: every acknowledged event on the hub exactly once.
    let acked: Vec<String> = hub_acked
        .lock()
        .unwrap()
        .iter()
        .chain(ward_acked.lock().unwrap().iter())
        .map(|a| a.0.clone())
        .collect();
    let reader_settings =
        ConnectSettings::resolve(Some(&state.join("credentials/auditor.env"))).unwrap();
    let stored: Arc<Mutex<BTreeMap<String, usize>>> = Default::default();
    let read_error: Mutex<String> = Default::default();
    let diagnose = || {
        let (_, sites) = hosts.run(
            "op",
            LIENTHONG,
            &["site", "list", "--env", operator_env.to_str().unwrap()],
        );
        let missing: Vec<&String> = {
            let stored = stored.lock().unwrap();
            acked
                .iter()
                .filter(|a| !stored.contains_key(*a))
                .take(5)
                .collect()
        };
        format!(
            "missing, e.g.: {missing:?} (of {} read; last read error: {})\nsite list:\n{sites}\n{}",
            stored.lock().unwrap().len(),
            read_error.lock().unwrap(),
            logs(&bundles)
        )
    };
    let all_there = wait_until_or(
        "the hub holds every acknowledged event",
        Duration::from_secs(300),
        diagnose,
        || {
            let (settings, stored) = (reader_settings.clone(), stored.clone());
            let ids = hosts
                .thread("op", move || {
                    Box::pin(async move { stored_ids(&settings, "FIELD_REPORTS").await })
                })
                .join()
                .unwrap();
            match ids {
                Ok(ids) => {
                    let done = acked.iter().all(|a| ids.contains_key(a));
                    *stored.lock().unwrap() = ids;
                    done
                }
                Err(e) => {
                    *read_error.lock().unwrap() = e;
                    false
                }
            }
        },
    );
    let stored = stored.lock().unwrap().clone();
    let lost = acked.iter().filter(|a| !stored.contains_key(*a)).count();
    let duplicated = stored.values().filter(|n| **n > 1).count();
    eprintln!(
        "acknowledged {} (hub {}, ward {}; {hub_refused} and {ward_refused} answers not 2xx, sent again), lost {lost}, duplicated {duplicated}; the hub held all {:.0} s after publishing stopped",
        acked.len(),
        hub_acked.lock().unwrap().len(),
        ward_acked.lock().unwrap().len(),
        all_there.as_secs_f64()
    );
    assert_eq!((lost, duplicated), (0, 0));
    // The write the isolated node did not acknowledge: a publisher that hears nothing cannot
    // know whether it was stored, and sends it again with the same id (stored once either way).
    eprintln!(
        "the write the isolated node did not acknowledge was {} after healing",
        if stored.contains_key(ISOLATED_ID) {
            "stored (once)"
        } else {
            "not stored"
        }
    );
    let reads = agency_reads.lock().unwrap().clone();
    let failed: Vec<&String> = reads.iter().filter_map(|r| r.as_ref().err()).collect();
    let totals: Vec<u64> = reads
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    eprintln!(
        "the agency site answered {} of {} reads from its copy (its count {} → {})",
        totals.len(),
        reads.len(),
        totals.first().copied().unwrap_or(0),
        totals.last().copied().unwrap_or(0)
    );
    assert!(
        failed.is_empty(),
        "the agency site did not answer: {failed:?}"
    );
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "its count went back"
    );

    // The read models equal a fresh rebuild.
    // Every report on the stream: the acknowledged ones, and the isolated write if it was
    // stored after all.
    let expected_reports = stored.len() as u64;
    let live_kpi = |http: &reqwest::Client, url: String| {
        let http = http.clone();
        hosts
            .thread("op", move || {
                Box::pin(async move {
                    match http.get(url).send().await {
                        Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                        Err(_) => Value::Null,
                    }
                })
            })
            .join()
            .unwrap()
    };
    let http = https_client(&ca);
    let live_url = format!("https://{n1}:8080/api/v1/kpi");
    wait_until(
        "the live read model folded every event",
        Duration::from_secs(120),
        || {
            live_kpi(&http, live_url.clone())["field_reports"]["total"].as_u64()
                == Some(expected_reports)
        },
    );
    let live = live_kpi(&http, live_url.clone())["field_reports"].clone();
    let rebuilt_db = root.join("rebuilt");
    let (ok, out) = hosts.run(
        "op",
        LIENTHONG,
        &[
            "replay",
            "rebuild",
            "--projection",
            "field_reports",
            "--db",
            rebuilt_db.to_str().unwrap(),
            "--env",
            state.join("credentials/replay.env").to_str().unwrap(),
        ],
    );
    assert!(ok, "replay rebuild: {out}");
    let serving = hosts.spawn(
        "op",
        LIENTHONG,
        &[
            "replay",
            "serve",
            "--read-only",
            "--db",
            rebuilt_db.to_str().unwrap(),
            "--listen",
            "127.0.0.1:18080",
        ],
        &[],
        None,
    );
    let plain = reqwest::Client::new();
    wait_until(
        "the rebuilt read model answers",
        Duration::from_secs(30),
        || !live_kpi(&plain, "http://127.0.0.1:18080/api/v1/kpi".into()).is_null(),
    );
    let rebuilt =
        live_kpi(&plain, "http://127.0.0.1:18080/api/v1/kpi".into())["field_reports"].clone();
    drop(serving);
    assert_eq!(
        live, rebuilt,
        "the live read model differs from a fresh rebuild"
    );
    eprintln!("the live read model equals a fresh rebuild ({expected_reports} reports)");

    // The history verifies, centrally and against the witness.
    let public_key = bundles.join("n1/audit-public.key");
    let witness_env = bundles.join("kiem-toan/data/credentials/auditor.env");
    let auditor = state.join("credentials/auditor.env");
    let verify = |witness: bool| {
        let mut args = vec![
            "audit",
            "verify",
            "--env",
            auditor.to_str().unwrap(),
            "--public-key",
            public_key.to_str().unwrap(),
            "--stream",
            "FIELD_REPORTS",
        ];
        if witness {
            args.extend(["--witness", witness_env.to_str().unwrap()]);
        }
        hosts.run("op", LIENTHONG, &args)
    };
    let last = std::cell::RefCell::new(String::new());
    wait_until_or(
        "audit verify passes (checkpoints written)",
        Duration::from_secs(180),
        || last.borrow().clone(),
        || {
            let (ok, out) = verify(false);
            *last.borrow_mut() = out;
            ok
        },
    );
    let (ok, out) = verify(true);
    assert!(ok, "audit verify --witness: {out}");
    eprintln!("audit verify passes, also with --witness");

    // Nothing secret crossed the network in the clear.
    drop(running);
    let frames = capture.finish();
    assert!(
        find(&frames, control.as_bytes()),
        "the capture missed the plaintext control: it sees nothing"
    );
    let mut secrets: Vec<(String, String)> = vec![
        ("the events' marker".into(), marker.clone()),
        (
            "the hub caller's token".into(),
            hub_token.trim().to_string(),
        ),
        (
            "the ward caller's token".into(),
            ward_caller["LIENTHONG_INGRESS_TOKEN"].clone(),
        ),
    ];
    for role in [
        "operator", "ingress", "replay", "system", "auditor", "deliver",
    ] {
        secrets.push((
            format!("the {role} password"),
            env_of(&state.join(format!("credentials/{role}.env")))["NATS_PASSWORD"].clone(),
        ));
    }
    for (what, secret) in &secrets {
        assert!(
            !find(&frames, secret.as_bytes()),
            "{what} crossed the network in the clear"
        );
    }
    eprintln!(
        "capture: {} bytes between the hosts; the plaintext control is in it, none of {} secrets ({})",
        frames.len(),
        secrets.len(),
        secrets.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(", ")
    );
    let _ = caught_up;
}
