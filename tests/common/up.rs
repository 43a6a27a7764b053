//! `lienthong up` as a real process on free ports with its own data directory, for the tests
//! that try the whole bus as a user would; stopped (TERM, then KILL) when dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` consecutive free ports (a cluster's nodes take `--nats-port` and the next ones).
pub fn free_ports(n: u16) -> u16 {
    loop {
        let p = free_port();
        if p < 65000 && (1..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
}

pub struct Up {
    child: Child,
    dir: tempfile::TempDir,
    /// Its `--data` directory.
    pub data: PathBuf,
    /// The replay service's base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    /// Its (first) NATS port.
    pub nats: u16,
    /// Its arguments and HTTP and ingress ports, to start it again the same way.
    args: Vec<String>,
    ports: (u16, u16),
}

impl Up {
    /// `lienthong up ARGS…` with free NATS, HTTP and ingress ports (three NATS ports when
    /// `--cluster` is among the arguments) and a temporary data directory.
    pub fn start(args: &[&str]) -> Self {
        Self::start_after(args, |_| ())
    }

    /// [`Up::start`], once `prepare` has put what it wants into the data directory (e.g. a
    /// restored backup).
    pub fn start_after(args: &[&str], prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepare(&data);
        let nats = if args.contains(&"--cluster") {
            free_ports(3)
        } else {
            free_port()
        };
        let (http_port, ingress_port) = (free_port(), free_port());
        let child = spawn(&["up"], args, nats, http_port, ingress_port, &dir, "up.log");
        Self {
            child,
            dir,
            data,
            base: format!("http://127.0.0.1:{http_port}"),
            nats,
            args: args.iter().map(|a| a.to_string()).collect(),
            ports: (http_port, ingress_port),
        }
    }

    /// Stops it (TERM), lets `f` do what it wants with the data directory (damage it, …),
    /// and starts it again on the same ports and data; its log goes on in the same file.
    pub fn restart_after(&mut self, f: impl FnOnce(&Path)) {
        stop(&mut self.child);
        f(&self.data);
        self.start_again();
    }

    /// Where its ingress answers (with `--demo` or `--ingress-config`).
    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.ports.1)
    }

    /// Stops it (TERM) and starts it again on the same ports and data with other arguments.
    pub fn restart_with(&mut self, args: &[&str]) {
        stop(&mut self.child);
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.start_again();
    }

    /// Kills it with SIGKILL (its nats-servers are told to stop by the kernel and are still
    /// ending) and starts it again at once on the same ports and data, as a service manager
    /// would; its log goes on in the same file.
    pub fn crash_and_start_again(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.start_again();
    }

    fn start_again(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let (http, ingress) = self.ports;
        self.child = spawn(
            &["up"],
            &args,
            self.nats,
            http,
            ingress,
            &self.dir,
            "up.log",
        );
    }

    /// Every event id in `stream`, with how many times it is there, read as its auditor.
    pub async fn stored_ids(&self, stream: &str) -> BTreeMap<String, usize> {
        use lienthong_bus::cloudevents::AttributesReader;
        let url = format!("nats://127.0.0.1:{}", self.nats);
        let creds =
            lienthong_bus::CredentialSet::load_or_generate(&self.data.join("credentials"), &url)
                .unwrap();
        let client = creds
            .settings("auditor", &url)
            .unwrap()
            .connect("test-reader")
            .await
            .unwrap();
        let reader = lienthong_bus::StreamReader::new(client, Default::default());
        let mut ids = BTreeMap::new();
        for m in reader.read_all(stream, None).await.unwrap() {
            let ev = lienthong_bus::subscriber::decode_stored(&m, None).unwrap();
            *ids.entry(ev.event.id().to_string()).or_insert(0) += 1;
        }
        ids
    }

    /// `lienthong audit verify` with its auditor's credentials and `public_key`: whether it
    /// passed, and what it said.
    pub fn audit_verify(&self, public_key: &Path) -> (bool, String) {
        lienthong_status(&[
            "--env",
            self.credentials("auditor.env").to_str().unwrap(),
            "audit",
            "verify",
            "--public-key",
            public_key.to_str().unwrap(),
        ])
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("up.log")).unwrap_or_default();
        log.lines().rev().take(n).collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until its replay service answers `/healthz` with success (at most 120 s).
    pub async fn wait_healthy(&self, http: &reqwest::Client) {
        wait_for(
            "the bus answers",
            Duration::from_secs(120),
            || async {
                http.get(format!("{}/healthz", self.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
            || self.log_tail(20),
        )
        .await;
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `data/credentials/FILE`.
    pub fn credentials(&self, file: &str) -> PathBuf {
        self.data.join("credentials").join(file)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `lienthong COMMAND ARGS…` on the given ports with `--data DIR/data`, its log in
/// `DIR/LOG`.
fn spawn(
    command: &[&str],
    args: &[&str],
    nats: u16,
    http: u16,
    ingress: u16,
    dir: &tempfile::TempDir,
    log: &str,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join(log))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(command)
        .args(args)
        .args(["--nats-port", &nats.to_string()])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--ingress", &format!("127.0.0.1:{ingress}")])
        .arg("--data")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Stops a child: TERM, then KILL after 30 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
}

/// `lienthong site up ARGS…` as a process with a temporary data directory and free NATS,
/// ingress and HTTP ports; stopped when dropped.
pub struct SiteUp {
    child: Child,
    dir: tempfile::TempDir,
    /// Its `--data` directory.
    pub data: PathBuf,
    /// Where its ingress (a ward's) or read models (an agency's) answer.
    pub ingress: String,
    pub http: String,
}

impl SiteUp {
    pub fn start(args: &[&str]) -> Self {
        Self::start_after(args, |_| ())
    }

    /// [`Up::start`], once `prepare` has put what it wants into the data directory (e.g. a
    /// restored backup).
    pub fn start_after(args: &[&str], prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepare(&data);
        let (nats, ingress, http) = (free_port(), free_port(), free_port());
        let child = spawn(&["site", "up"], args, nats, http, ingress, &dir, "site.log");
        Self {
            child,
            dir,
            data,
            ingress: format!("http://127.0.0.1:{ingress}/events"),
            http: format!("http://127.0.0.1:{http}"),
        }
    }

    /// Stops it (TERM), keeping its data directory until dropped.
    #[allow(dead_code)]
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("site.log")).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        log.lines().rev().take(n).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for SiteUp {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Runs `lienthong ARGS…` to its end; panics with its output unless it succeeds.
pub fn lienthong(args: &[&str]) -> String {
    let (ok, text) = lienthong_status(args);
    assert!(ok, "lienthong {args:?} failed:\n{text}");
    text
}

/// Runs `lienthong ARGS…` to its end: whether it succeeded, and its output.
pub fn lienthong_status(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The KPIs once the demo's history is in and two reads 2 s apart agree (at most 180 s).
pub async fn settled_kpi(http: &reqwest::Client, up: &Up) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut before = Value::Null;
    loop {
        let k = json_or_null(http, format!("{}/api/v1/kpi", up.base)).await;
        if k["meetings"]["wards_connected"] == 18 && k == before {
            return k;
        }
        before = k;
        assert!(
            Instant::now() < deadline,
            "the demo never settled\n{}",
            up.log_tail(25)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// GET `url` as JSON, `Null` when there is no answer (yet).
pub async fn json_or_null(http: &reqwest::Client, url: String) -> Value {
    match http.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// The demo caller's settings (`ingress-demo.env`).
pub fn ingress_caller(path: &Path) -> BTreeMap<String, String> {
    lienthong_bus::credentials::read_env_file(path).unwrap()
}

/// POSTs a new field report `id` in `ward` to the ingress as the demo caller (structured
/// CloudEvent, event id `PREFIX/id`).
pub async fn post_report(
    http: &reqwest::Client,
    caller: &BTreeMap<String, String>,
    prefix: &str,
    id: &str,
    ward: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(&caller["LIENTHONG_INGRESS_URL"])
        .bearer_auth(&caller["LIENTHONG_INGRESS_TOKEN"])
        .header("content-type", "application/cloudevents+json")
        .timeout(Duration::from_secs(10))
        .body(
            json!({
                "specversion": "1.0", "type": "vn.egov.field_reports.report.submitted",
                "source": caller["LIENTHONG_INGRESS_SOURCE"], "id": format!("{prefix}/{id}"),
                "subject": id, "time": "2023-12-30T01:00:00Z",
                "datacontenttype": "application/json",
                "data": {"report_id": id, "category": "HTGT",
                    "category_name": "Hạ tầng giao thông", "ward": ward, "status": "open",
                    "description": "Ổ gà", "requested_at": "2023-12-30T08:00:00+07:00"}
            })
            .to_string(),
        )
        .send()
        .await
}

/// A writer that posts new reports to the ingress one after another, each until it is
/// acknowledged (202), as a sender that must not lose one would. Stopped by sending `true`;
/// it then returns the event ids acknowledged, in order, and how many tries went unanswered.
pub struct Writer {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub acked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub task: tokio::task::JoinHandle<u32>,
}

impl Writer {
    pub fn start(caller: BTreeMap<String, String>, prefix: &'static str) -> Self {
        let http = reqwest::Client::new();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let acked: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let record = acked.clone();
        let task = tokio::spawn(async move {
            let mut unanswered = 0u32;
            for n in 0.. {
                let id = format!("{}-{n:05}", prefix.to_uppercase());
                loop {
                    match post_report(&http, &caller, prefix, &id, "mui-ne").await {
                        Ok(r) if r.status() == 202 => break,
                        _ => unanswered += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                record.lock().unwrap().push(format!("{prefix}/{id}"));
                if *stop_rx.borrow() {
                    break;
                }
            }
            unanswered
        });
        Self { stop, acked, task }
    }

    /// Stops it: the ids acknowledged, and the tries unanswered (sent again).
    pub async fn finish(self) -> (Vec<String>, u32) {
        self.stop.send(true).unwrap();
        let unanswered = self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        (acked, unanswered)
    }
}

/// Waits until `ok` (at most `timeout`), saying how long it took; fails with `context()`.
pub async fn wait_for<F, Fut>(
    what: &str,
    timeout: Duration,
    mut ok: F,
    context: impl Fn() -> String,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ok().await {
        assert!(
            start.elapsed() < timeout,
            "{what}: not after {timeout:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
}
