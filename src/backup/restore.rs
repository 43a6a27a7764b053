//! Putting a backup back: onto a running server or cluster (the operator's connection), or
//! into a data folder that `lienthong up --data` then runs on.
//!
//! A restore never mixes two histories: a stream of the backup that already holds messages
//! on the target is refused, and nothing is changed; an empty one (what a fresh `up`
//! provisions) is replaced. Each archive's digest is checked before it is sent, and each
//! restored stream's messages and sequences are compared with what the backup recorded.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{part_path, state_numbers, Manifest, Progress, StreamPart};
use crate::error::StackError;

/// How a restore may differ from the original.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Copies of every stream on the target (a cluster: 3); default: as backed up.
    pub replicas: Option<usize>,
}

/// One stream put back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub name: String,
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub seconds: f64,
}

/// Checks a part's archive against the manifest: its size and SHA-256.
pub fn check_part(dir: &Path, part: &StreamPart) -> Result<(), String> {
    let path = part_path(dir, part).map_err(|e| e.to_string())?;
    super::check_file(&path, part.bytes, &part.sha256).map_err(|e| format!("{}: {e}", part.name))
}

/// The backup in `dir`, its manifest read and every archive checked against it: a damaged
/// backup is refused before anything is restored.
pub fn checked(dir: &Path) -> Result<Manifest, StackError> {
    let manifest = Manifest::read(dir)?;
    let damaged: Vec<String> = manifest
        .streams
        .iter()
        .filter_map(|p| check_part(dir, p).err())
        .collect();
    if !damaged.is_empty() {
        return Err(StackError::Config(format!(
            "the backup is damaged; nothing was restored:\n  {}",
            damaged.join("\n  ")
        )));
    }
    Ok(manifest)
}

/// The configuration a part is restored with: replicas as asked, and for event streams a
/// duplicate window long enough to remember every message id stored since the buckets were
/// taken, so that an adapter resuming from its backed-up cursor repeats nothing.
fn restore_config(manifest: &Manifest, part: &StreamPart, opts: &Options) -> serde_json::Value {
    let mut config = part.config.clone();
    if let Some(r) = opts.replicas {
        config["num_replicas"] = r.into();
    }
    let window_ns = config["duplicate_window"].as_u64().unwrap_or(0);
    if !part.name.starts_with("KV_") && window_ns > 0 {
        let since = (Utc::now() - manifest.started_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let needed = lienthong_bus::topology::DUPLICATE_WINDOW + since + Duration::from_secs(60);
        config["duplicate_window"] = (window_ns.max(needed.as_nanos() as u64)).into();
    }
    config
}

/// Restores every stream of the backup in `dir` (its manifest, [`checked`]) through `client`
/// (the operator).
pub async fn restore(
    client: &async_nats::Client,
    dir: &Path,
    manifest: &Manifest,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Restored>, StackError> {
    let js = async_nats::jetstream::new(client.clone());
    // What is on the target: refused if it holds anything, replaced if empty.
    let mut holding = Vec::new();
    let mut empty = Vec::new();
    for part in &manifest.streams {
        if let Ok(mut s) = js.get_stream(&part.name).await {
            let info = s
                .info()
                .await
                .map_err(|e| StackError::Config(format!("reading stream {}: {e}", part.name)))?;
            // A stream that ever held a message has a history, even if none is left.
            if info.state.messages > 0 || info.state.last_sequence > 0 {
                holding.push(format!("{} ({} messages)", part.name, info.state.messages));
            } else {
                empty.push(part.name.clone());
            }
        }
    }
    if !holding.is_empty() {
        return Err(StackError::Config(format!(
            "the target already holds events in {}; a restore never mixes two histories: \
             restore onto a fresh server (or a new --data folder); nothing was changed",
            holding.join(", ")
        )));
    }
    for name in &empty {
        js.delete_stream(name)
            .await
            .map_err(|e| StackError::Config(format!("replacing the empty stream {name}: {e}")))?;
    }
    let mut out = Vec::new();
    for part in &manifest.streams {
        let began = Instant::now();
        let path = part_path(dir, part)?;
        let mut f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| StackError::io(format!("opening {}", path.display()), e))?;
        progress.stream(&part.name, part.bytes);
        let state = lienthong_bus::snapshot::restore(
            client,
            "$JS.API",
            &restore_config(manifest, part, opts),
            &part.state,
            &mut f,
            &|b| progress.bytes(b),
        )
        .await?;
        let (messages, first_seq, last_seq) = state_numbers(&state);
        if (messages, first_seq, last_seq) != part.recorded() {
            let (m, f, l) = part.recorded();
            return Err(StackError::Config(format!(
                "{} was restored with {messages} messages ({first_seq}–{last_seq}); the backup \
                 recorded {m} ({f}–{l})",
                part.name
            )));
        }
        let seconds = began.elapsed().as_secs_f64();
        progress.done(&part.name, part.bytes, seconds);
        out.push(Restored {
            name: part.name.clone(),
            messages,
            first_seq,
            last_seq,
            seconds,
        });
    }
    Ok(out)
}

/// Restores the backup in `dir` into the data folder `data`, which `lienthong up --data
/// [--cluster N]` then runs on: private nats-servers on loopback — one, or a cluster of
/// `nodes` (every stream then at `nodes` replicas unless asked otherwise) — are started on its
/// stores for the restore, and stopped. With `identity`, the backup's secrets are put back
/// first (the same roles' passwords, audit key, pseudonyms); without, the roles' credentials
/// are those of `data` (made if missing) and the checkpoints signed before are checked with
/// the old audit public key only.
pub async fn restore_into_data(
    dir: &Path,
    data: &Path,
    nodes: usize,
    identity: Option<&age::x25519::Identity>,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Vec<Restored>, StackError> {
    let manifest = checked(dir)?;
    // Nothing is written into a folder a running bus uses.
    for i in 0..nodes {
        lienthong_bus::server::await_previous(&crate::nodes::store_dir(data, nodes, i)).await?;
    }
    if let Some(identity) = identity {
        let part = manifest.secrets.as_ref().ok_or_else(|| {
            StackError::Config(format!(
                "{} holds no secrets (it was taken without --secrets-from)",
                dir.display()
            ))
        })?;
        let files = super::secrets::open(dir, part, identity)?;
        super::secrets::put_back(data, &files)?;
    }
    let servers = PrivateServers::start(data, nodes).await?;
    let result = async {
        let client = servers.operator().await?;
        // As many replicas as nodes, unless asked otherwise (a cluster's backup onto one).
        let opts = Options {
            replicas: opts.replicas.or(Some(nodes)),
        };
        restore(&client, dir, &manifest, &opts, progress).await
    }
    .await;
    servers.stop().await?;
    result
}

/// nats-servers on loopback on free ports — one, or a cluster of `nodes` — on the stores of
/// the data folder `data` (laid out as `up` lays them out), with the roles of
/// `data/credentials`.
pub(crate) struct PrivateServers(pub crate::nodes::Nodes);

impl PrivateServers {
    pub async fn start(data: &Path, nodes: usize) -> Result<Self, StackError> {
        std::fs::create_dir_all(data)
            .map_err(|e| StackError::io(format!("creating {}", data.display()), e))?;
        Ok(Self(
            crate::nodes::start_servers(data, nodes, crate::stack::CLUSTER_NAME).await?,
        ))
    }

    /// Connected as the operator, once JetStream answers (a cluster elects its leader).
    pub async fn operator(&self) -> Result<async_nats::Client, StackError> {
        let client = self
            .0
            .credentials
            .settings("operator", &self.0.url)?
            .connect("lienthong-restore")
            .await?;
        let js = async_nats::jetstream::new(client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = js.query_account().await {
            if Instant::now() >= deadline {
                return Err(StackError::Config(format!(
                    "JetStream did not answer within 60 s: {e}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(client)
    }

    pub async fn stop(self) -> Result<(), StackError> {
        for s in self.0.servers {
            s.stop().await?;
        }
        Ok(())
    }
}
