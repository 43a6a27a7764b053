//! `lienthong chaos`: a crash campaign. The bus runs as separate processes — nats-server, the
//! HTTP ingress, the field-reports adapter (pulling from an Open311 simulator in this process)
//! and the replay service — while a writer posts events to the ingress and keeps its own record
//! of what was acknowledged (as Jepsen's and Kafka's tests do). In each round one component,
//! chosen at random, is killed with SIGKILL at a random moment and started again. At the end a
//! checker reads everything back: per round and in total, events acknowledged, stored, lost and
//! duplicated; every report the source system holds on the stream; and whether the replay
//! service's read model equals a fresh rebuild of the stream.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lienthong_adapters::field_reports::{Open311Data, Open311Simulator};
use lienthong_bus::cloudevents::AttributesReader;
use lienthong_bus::{ConnectSettings, SchemaRegistry, StreamReader};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rounds of publishing, each with one component killed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Events posted to the ingress per round.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    events_per_round: u32,
    /// Reports the Open311 system holds for the adapter to pull (fed over the rounds).
    #[arg(long, default_value_t = 600)]
    reports: usize,
    /// Seed of the random choices (which component, when).
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Run a cluster of three nats-server nodes (every stream at three replicas); the node
    /// killed is chosen at random.
    #[arg(long)]
    cluster: bool,
    /// Keep the stores and logs here (default: a temporary directory, removed).
    #[arg(long)]
    keep: Option<PathBuf>,
}

const COMPONENTS: &[&str] = &["nats-server", "ingress", "adapter", "replay"];
const TOKEN: &str = "chaos-writer-token";
const SOURCE: &str = "urn:lienthong:chaos:writer";
const ADAPTER_SOURCE: &str = "urn:lienthong:chaos:open311";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The components that run as processes of this binary, each started again after a kill.
struct Processes {
    exe: PathBuf,
    dir: PathBuf,
    children: BTreeMap<&'static str, Child>,
    args: BTreeMap<&'static str, Vec<String>>,
}

impl Processes {
    fn start(&mut self, name: &'static str) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?;
        let child = Command::new(&self.exe)
            .args(&self.args[name])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.insert(name, child);
        Ok(())
    }

    fn kill(&mut self, name: &str) {
        if let Some(mut c) = self.children.remove(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Started again if it exited (e.g. it could not connect while the server was down).
    fn keep_alive(&mut self) -> anyhow::Result<()> {
        let exited: Vec<&'static str> = self
            .children
            .iter_mut()
            .filter_map(|(n, c)| c.try_wait().ok().flatten().map(|_| *n))
            .collect();
        for n in exited {
            self.start(n)?;
        }
        Ok(())
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        let names: Vec<&'static str> = self.children.keys().copied().collect();
        for n in names {
            self.kill(n);
        }
    }
}

/// One round's record, kept by the writer.
#[derive(Default)]
struct Round {
    killed: String,
    at_ms: u128,
    acknowledged: Vec<String>,
}

pub async fn run(global: &Global, a: Args) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir()?;
    let dir = a.keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let registry = global.registry()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);

    // The server (or a cluster's nodes), with the project's roles.
    let nodes = if a.cluster { 3 } else { 1 };
    let lienthong::nodes::Nodes { mut servers, .. } =
        lienthong::nodes::start(&dir, nodes, "chaos").await?;
    let creds_dir = dir.join("credentials");

    // The source system the adapter pulls from: synthetic reports only (all valid).
    let fixtures: BTreeSet<String> = Open311Data::fixtures()
        .requests
        .iter()
        .chain(Open311Data::fixtures().updates.iter())
        .filter_map(|r| r["service_request_id"].as_str().map(str::to_string))
        .collect();
    let mut data = Open311Data::demo(2023, a.reports, a.seed);
    let synthetic = |r: &Value| {
        r["service_request_id"]
            .as_str()
            .is_some_and(|id| !fixtures.contains(id))
    };
    // Fed to the system round by round, in time order, as reports arrive in a real one.
    let when = |r: &Value| {
        r["updated_datetime"]
            .as_str()
            .or(r["requested_datetime"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut feed: Vec<(String, bool, Value)> = data
        .requests
        .drain(..)
        .filter(synthetic)
        .map(|r| (when(&r), true, r))
        .chain(
            data.updates
                .drain(..)
                .filter(synthetic)
                .map(|u| (when(&u), false, u)),
        )
        .collect();
    feed.sort_by(|x, y| x.0.cmp(&y.0));
    let (rounds_n, events_n) = (a.rounds as usize, a.events_per_round as usize);
    let per_round = feed.len().div_ceil(rounds_n);
    let simulator = Open311Simulator::new(data);
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_addr = sim_listener.local_addr()?;
    let router = simulator.router();
    tokio::spawn(async move { axum::serve(sim_listener, router).await });

    // The components, as processes.
    let ingress_port = free_port()?;
    let replay_port = free_port()?;
    std::fs::write(
        dir.join("ingress.toml"),
        format!(
            "listen = \"127.0.0.1:{ingress_port}\"\nmax_body_bytes = 1048576\n[[callers]]\nname = \"chaos\"\ntoken_sha256 = \"{}\"\nsources = [\"{SOURCE}\"]\ntypes = [\"vn.egov.field_reports.*\"]\n",
            lienthong_adapters::ingress::token_hash(TOKEN)
        ),
    )?;
    std::fs::write(
        dir.join("adapter.toml"),
        format!(
            "[field_reports]\nendpoint = \"http://{sim_addr}/\"\nsource = \"{ADAPTER_SOURCE}\"\npoll_interval_secs = 1\npage_size = 20\nmax_records_per_poll = 40\n"
        ),
    )?;
    let env = |role: &str| creds_dir.join(format!("{role}.env")).display().to_string();
    let path = |p: &str| dir.join(p).display().to_string();
    let mut procs = Processes {
        exe: std::env::current_exe()?,
        dir: dir.clone(),
        children: BTreeMap::new(),
        args: BTreeMap::from([
            (
                "ingress",
                vec![
                    "ingress".into(),
                    "--config".into(),
                    path("ingress.toml"),
                    "--env".into(),
                    env("ingress"),
                ],
            ),
            (
                "adapter",
                vec![
                    "adapter".into(),
                    "run".into(),
                    "field_reports".into(),
                    "--config".into(),
                    path("adapter.toml"),
                    "--env".into(),
                    env("adapter-field_reports"),
                ],
            ),
            (
                "replay",
                vec![
                    "replay".into(),
                    "serve".into(),
                    "--db".into(),
                    path("replay"),
                    "--listen".into(),
                    format!("127.0.0.1:{replay_port}"),
                    "--env".into(),
                    env("replay"),
                ],
            ),
        ]),
    };
    for c in ["ingress", "adapter", "replay"] {
        procs.start(c)?;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let ingress_url = format!("http://127.0.0.1:{ingress_port}/events");

    // The rounds.
    let mut rounds: Vec<Round> = Vec::new();
    // Every component is killed as often as the others, in a random order.
    let offset = rng.random_range(0..COMPONENTS.len());
    let mut feed = feed.into_iter();
    for r in 0..rounds_n {
        for (_, is_request, record) in feed.by_ref().take(per_round) {
            if is_request {
                simulator.add_request(record);
            } else {
                simulator.add_update(record);
            }
        }
        let victim = COMPONENTS[(r + offset) % COMPONENTS.len()];
        let kill_after = rng.random_range(0..events_n);
        // Every other round starts the component again at once, as a service manager
        // would (the dead process's port and store just released); the others after a pause.
        let down_for = match r % 2 {
            0 => Duration::ZERO,
            _ => Duration::from_millis(rng.random_range(200..1500)),
        };
        let mut round = Round {
            killed: victim.to_string(),
            ..Default::default()
        };
        let started = Instant::now();
        for i in 0..events_n {
            if i == kill_after {
                round.at_ms = started.elapsed().as_millis();
                if victim == "nats-server" {
                    let node = rng.random_range(0..servers.len());
                    if servers.len() > 1 {
                        round.killed = format!("nats n{}", node + 1);
                    }
                    servers[node].kill().await;
                    tokio::time::sleep(down_for).await;
                    servers[node].restart().await?;
                } else {
                    procs.kill(victim);
                    tokio::time::sleep(down_for).await;
                    procs.start(victim)?;
                }
            }
            let id = format!("chaos-{r}-{i}");
            post_until_acknowledged(&http, &ingress_url, &id, &mut procs).await?;
            round.acknowledged.push(id);
        }
        rounds.push(round);
    }

    // Settle: the adapter has pulled everything, the replay service has folded everything.
    let reader = StreamReader::new(connect(&creds_dir, "auditor").await?, Default::default());
    let expected_reports = simulator.report_ids();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (ids, reports) = loop {
        procs.keep_alive()?;
        // A cluster may still be electing leaders after the last kill: read again.
        let (ids, reports) = match read_back(&reader, &registry).await {
            Ok(r) => r,
            Err(e) if Instant::now() < deadline => {
                eprintln!("reading back: {e}; again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let last = reader.last_sequence("FIELD_REPORTS").await.unwrap_or(0);
        let folded = replay_sequence(&http, replay_port).await;
        if expected_reports.is_subset(&reports) && folded == Some(last) {
            break (ids, reports);
        }
        if Instant::now() > deadline {
            break (ids, reports);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // The checker.
    let mut total = (0usize, 0usize, 0usize, 0usize);
    for (r, round) in rounds.iter().enumerate() {
        let stored = round
            .acknowledged
            .iter()
            .filter(|id| ids.contains_key(*id))
            .count();
        let lost = round.acknowledged.len() - stored;
        let duplicated: usize = round
            .acknowledged
            .iter()
            .map(|id| ids.get(id).copied().unwrap_or(0).saturating_sub(1))
            .sum();
        println!(
            "round {:>3}: {:<11} killed at {:>5} ms; {} acknowledged, {stored} stored, {lost} lost, {duplicated} duplicated",
            r + 1,
            round.killed,
            round.at_ms,
            round.acknowledged.len()
        );
        total.0 += round.acknowledged.len();
        total.1 += stored;
        total.2 += lost;
        total.3 += duplicated;
    }
    let duplicated_anywhere: usize = ids.values().map(|n| n.saturating_sub(1)).sum();
    let missing_reports = expected_reports.difference(&reports).count();
    println!(
        "adapter: {} reports in the source system, {} on the stream, {missing_reports} missing",
        expected_reports.len(),
        expected_reports.intersection(&reports).count()
    );
    let equal = read_model_equals_rebuild(&http, replay_port, &creds_dir, &registry).await?;
    println!(
        "read model {} a fresh rebuild of the stream",
        if equal { "equals" } else { "DIFFERS FROM" }
    );
    let ok = total.2 == 0 && duplicated_anywhere == 0 && missing_reports == 0 && equal;
    println!(
        "chaos: {} rounds, {} acknowledged, {} lost, {} duplicated, read models {}",
        rounds.len(),
        total.0,
        total.2 + missing_reports,
        duplicated_anywhere,
        if equal { "equal" } else { "DIFFER" }
    );
    drop(procs);
    for server in servers {
        server.stop().await?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn connect(creds_dir: &Path, role: &str) -> anyhow::Result<async_nats::Client> {
    Ok(
        ConnectSettings::resolve(Some(&creds_dir.join(format!("{role}.env"))))?
            .connect(&format!("lienthong-chaos-{role}"))
            .await?,
    )
}

/// Posts one event until the ingress acknowledges it (202); a refusal (503) or a dead
/// ingress is retried, as a sender should.
async fn post_until_acknowledged(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    procs: &mut Processes,
) -> anyhow::Result<()> {
    let body = json!({
        "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
        "source": SOURCE, "id": id, "subject": id, "time": "2023-12-30T01:00:00Z",
        "datacontenttype": "application/json",
        "data": {"report_id": id, "category": "HTGT", "category_name": "Hạ tầng giao thông",
            "ward": "mui-ne", "status": "open", "description": "Ổ gà",
            "requested_at": "2023-12-30T08:00:00+07:00"}
    })
    .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = http
            .post(url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/cloudevents+json")
            .body(body.clone())
            .send()
            .await;
        if r.as_ref().is_ok_and(|r| r.status() == 202) {
            return Ok(());
        }
        if let Ok(r) = &r {
            if r.status().is_client_error() {
                anyhow::bail!("{id} refused: {}", r.status());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{id} never acknowledged: {r:?}");
        procs.keep_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event id of the writer on FIELD_REPORTS with how many times it is stored, and every
/// report id the adapter's events name.
async fn read_back(
    reader: &StreamReader,
    registry: &Arc<SchemaRegistry>,
) -> anyhow::Result<(BTreeMap<String, usize>, BTreeSet<String>)> {
    let mut ids = BTreeMap::new();
    let mut reports = BTreeSet::new();
    let mut seen = BTreeMap::<(String, String), usize>::new();
    for m in reader.read_all("FIELD_REPORTS", None).await? {
        let ev = lienthong_bus::subscriber::decode_stored(&m, Some(registry))?;
        let (source, id) = (ev.event.source().to_string(), ev.event.id().to_string());
        *seen.entry((source.clone(), id.clone())).or_default() += 1;
        if source == SOURCE {
            *ids.entry(id).or_default() += 1;
        } else if source == ADAPTER_SOURCE {
            if let Some(key) = ev.event.subject() {
                reports.insert(key.to_string());
            }
        }
    }
    // Any event stored twice (the adapter's too) counts as a duplicate of the writer's kind.
    for ((source, id), n) in seen {
        if n > 1 && source != SOURCE {
            ids.insert(format!("{source} {id}"), n);
        }
    }
    Ok((ids, reports))
}

async fn replay_sequence(http: &reqwest::Client, port: u16) -> Option<u64> {
    let h: Value = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    h["projections"]["field_reports"]["stream_sequence"].as_u64()
}

/// The replay service's field-report figures against a rebuild of the stream from scratch.
async fn read_model_equals_rebuild(
    http: &reqwest::Client,
    port: u16,
    creds_dir: &Path,
    registry: &Arc<SchemaRegistry>,
) -> anyhow::Result<bool> {
    // The live read model as of one sequence: read until two reads agree (an adapter may
    // still be publishing updates, and a commit may land between the figures and the
    // sequence); the fresh rebuild stops at that same sequence.
    let stats = || async {
        anyhow::Ok(
            http.get(format!(
                "http://127.0.0.1:{port}/api/v1/field-reports/stats"
            ))
            .send()
            .await?
            .json::<Value>()
            .await?,
        )
    };
    let mut live = stats().await?;
    for _ in 0..100 {
        let again = stats().await?;
        if again == live {
            break;
        }
        live = again;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at = lienthong_replay::store::PointInTime {
        as_of: None,
        until_seq: live.get("stream_sequence").and_then(Value::as_u64),
    };
    let store = lienthong_replay::ReadStore::temporary()?;
    let js = async_nats::jetstream::new(connect(creds_dir, "replay").await?);
    let runner = lienthong_replay::Runner::new(
        js,
        registry.clone(),
        store.clone(),
        Arc::new(lienthong_replay::FieldReportsProjection),
        Arc::new(lienthong_replay::Metrics::default()),
    );
    // As above: a transient refusal right after a node's restart is tried again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = runner.rebuild_at(at, &|_, _| {}).await {
        anyhow::ensure!(Instant::now() < deadline, "rebuilding: {e}");
        eprintln!("rebuilding: {e}; again in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let tree = store.current(lienthong_replay::field_reports::NAME)?;
    let mut fresh = serde_json::to_value(
        lienthong_replay::field_reports::FieldReportsView { tree: &tree }.stats()?,
    )?;
    for v in [&mut live, &mut fresh] {
        if let Some(o) = v.as_object_mut() {
            o.remove("stream_sequence");
        }
    }
    if live != fresh {
        eprintln!("live:  {live}\nfresh: {fresh}");
    }
    Ok(live == fresh)
}
