//! The monitoring stations' data files, taken from the folder their FTP transfers fill.
//!
//! The stations write `<station>/<yyyy>/<MM>/<dd>/<station>_<time>.txt` under `inbox`
//! ([`super::files`]). Each look at the folder:
//! - finds every data file not yet taken (anywhere under `inbox`, but for `processed/` and
//!   `failed/`), leaving those modified less than `settle_secs` ago for the next look (an
//!   upload may still be writing them);
//! - takes each station's files in the order of their time, at most `files_per_station` of a
//!   station before the next station's: a station sending back 60 days after an outage does
//!   not hold the others up, and its own readings go in order;
//! - publishes each file's readings (ids from station, parameter and measurement time: a file
//!   sent twice, or taken again after a crash, adds nothing), readings taken while the device
//!   was calibrating or faulty marked so, never left out; lines that cannot be read go to the
//!   DLQ with their number and reason (as a digest: the content stays with the station);
//! - moves the file to `processed/` (or, when nothing of it could be read, to `failed/`),
//!   keeping its path.
//!
//! The subsystem must be registered on the bus first (`lienthong subsystem register
//! subsystems/devices/devices.toml`): its schemas come from the registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lienthong_bus::{DeadLetter, Outcomes, Publisher};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::files::{self, parse_lines, parse_name, FileName};
use super::SUBSYSTEM;
use crate::error::AdapterError;
use crate::publish::{publish_all, Tally};
use crate::AdapterContext;

/// The largest data file taken (a station's file is a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Lines of one file dead-lettered one by one; the rest in one.
pub const MAX_BAD_LINES: usize = 20;
/// A file whose last line is not finished is left this long for its upload to end.
pub const UNFINISHED_WAIT: Duration = Duration::from_secs(600);

/// What reading a data file gave.
enum Read {
    Bytes(Vec<u8>),
    TooLarge(u64),
    /// A link, a device, a folder: not read.
    NotAFile,
}

/// Reads a data file without following a link put in its place, and no more than
/// [`MAX_FILE_BYTES`].
fn read_data_file(path: &Path) -> Result<Read, AdapterError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let source = |e: std::io::Error| AdapterError::Source {
        url: path.display().to_string(),
        reason: e.to_string(),
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Read::NotAFile),
        Err(e) => return Err(source(e)),
    };
    if !file.metadata().map_err(source)?.is_file() {
        return Ok(Read::NotAFile);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(source)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Ok(Read::TooLarge(bytes.len() as u64));
    }
    Ok(Read::Bytes(bytes))
}

fn default_source() -> String {
    "urn:lienthong:phanthiet:devices".to_string()
}
const fn default_poll_interval_secs() -> u64 {
    10
}
const fn default_settle_secs() -> u64 {
    5
}
const fn default_files_per_station() -> usize {
    288
}

/// Configuration of the devices adapter (`[devices]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// CloudEvents `source` of the events (the registration's).
    #[serde(default = "default_source")]
    pub source: String,
    /// The folder the stations' data files arrive in (none: no files taken here).
    #[serde(default)]
    pub inbox: Option<PathBuf>,
    /// Analyse what `DEVICES` holds: thresholds crossed and cleared ([`super::analysis`]).
    #[serde(default)]
    pub analysis: Option<AnalysisConfig>,
    /// Seconds between two looks at the folder.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Files modified less than this many seconds ago are left for the next look.
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// At most this many files of one station before the next station's (288: a day at one
    /// file every 5 minutes).
    #[serde(default = "default_files_per_station")]
    pub files_per_station: usize,
}

/// The analysis (`[devices.analysis]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Each water-level station's alarm levels, e.g.
    /// `BTH_CATY_MN01 = [{ name = "báo động 1", level = 150.0 }]` (the unit it sends).
    #[serde(default)]
    pub alarm_levels: BTreeMap<String, Vec<super::analysis::AlarmLevel>>,
}

/// Where the analysis is, kept in `ADAPTER_STATE` after each batch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AnalysisState {
    /// The last `DEVICES` sequence folded.
    sequence: u64,
    analyser: super::analysis::Analyser,
}

/// What one look at the folder did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Intake {
    pub files: usize,
    #[serde(flatten)]
    pub tally: Tally,
    /// Lines or files that could not be read (kept in the DLQ as digests).
    pub unreadable: usize,
    /// Readings taken while the device was calibrating or faulty (published, marked).
    pub marked: usize,
}

#[derive(Clone)]
pub struct DevicesAdapter {
    config: DevicesConfig,
    publisher: Publisher,
    outcomes: Outcomes,
    /// Reads `DEVICES` (the analysis) and the registry.
    reader: lienthong_bus::StreamReader,
    state: crate::state::AdapterState,
}

/// One data file found, with its place in the order.
#[derive(Debug, Clone)]
struct Found {
    path: PathBuf,
    name: FileName,
}

impl DevicesAdapter {
    pub async fn build(config: DevicesConfig, ctx: AdapterContext) -> Result<Self, AdapterError> {
        if config.source.parse::<url::Url>().is_err() {
            return Err(AdapterError::Config(format!(
                "devices: source {:?} must be a URI",
                config.source
            )));
        }
        if config.inbox.is_none() && config.analysis.is_none() {
            return Err(AdapterError::Config(
                "devices: give an `inbox` folder, an `[devices.analysis]`, or both".into(),
            ));
        }
        if let Some(inbox) = &config.inbox {
            for sub in ["", "processed", "failed"] {
                std::fs::create_dir_all(inbox.join(sub)).map_err(|e| {
                    AdapterError::Config(format!("inbox {}: {e}", inbox.join(sub).display()))
                })?;
            }
        }
        // The subsystem's event types and schemas are the bus's registry's.
        let reader =
            lienthong_bus::StreamReader::new(ctx.js.client().clone(), ctx.refusals.clone());
        lienthong_bus::registry::live::load(&reader).await?;
        let Some(registration) = lienthong_bus::registry::live::registration(SUBSYSTEM) else {
            return Err(AdapterError::Config(
                "devices is not registered on this bus: run `lienthong subsystem register subsystems/devices/devices.toml` (as the operator) first".into(),
            ));
        };
        if registration.spec.source != config.source {
            return Err(AdapterError::Config(format!(
                "devices: source {:?} is not the registration's ({:?})",
                config.source, registration.spec.source
            )));
        }
        tokio::spawn(lienthong_bus::registry::live::follow(
            reader.clone(),
            std::future::pending(),
        ));
        let instance = crate::state::instance_name(None, &config.source)?;
        Ok(Self {
            publisher: ctx.publisher(config.source.clone()),
            outcomes: Outcomes::new(&ctx.metrics, "devices.files"),
            state: crate::state::AdapterState::open(&ctx, SUBSYSTEM, &instance).await?,
            reader,
            config,
        })
    }

    /// What became of the files' readings (`devices.files`).
    pub fn outcomes(&self) -> &Outcomes {
        &self.outcomes
    }

    /// Every data file under the inbox not yet taken, settled, by station then time.
    fn find(&self) -> Result<BTreeMap<String, Vec<Found>>, AdapterError> {
        let settle = Duration::from_secs(self.config.settle_secs);
        let mut by_station: BTreeMap<String, Vec<Found>> = BTreeMap::new();
        let Some(inbox) = &self.config.inbox else {
            return Ok(by_station);
        };
        let mut dirs = vec![inbox.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if dir != *inbox => {
                    // One station's folder that cannot be read holds no other up.
                    warn!(adapter = SUBSYSTEM, folder = %dir.display(), error = %e, "folder left for the next look");
                    continue;
                }
                Err(e) => {
                    return Err(AdapterError::Source {
                        url: dir.display().to_string(),
                        reason: e.to_string(),
                    })
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    let top = dir == *inbox;
                    let name = entry.file_name();
                    if !(top && (name == "processed" || name == "failed")) {
                        dirs.push(path);
                    }
                    continue;
                }
                let fresh = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age < settle);
                let name = entry.file_name().to_string_lossy().to_string();
                if !meta.is_file() || fresh || !name.to_ascii_lowercase().ends_with(".txt") {
                    continue;
                }
                let parsed = parse_name(&name).unwrap_or(FileName {
                    // Named wrongly: taken (and refused) on its own.
                    station: String::new(),
                    made_at: chrono::NaiveDateTime::default(),
                });
                by_station
                    .entry(parsed.station.clone())
                    .or_default()
                    .push(Found { path, name: parsed });
            }
        }
        for files in by_station.values_mut() {
            files.sort_by(|a, b| (a.name.made_at, &a.path).cmp(&(b.name.made_at, &b.path)));
        }
        Ok(by_station)
    }

    /// Takes every settled data file, station by station in rounds (see the module docs).
    pub async fn poll_inbox(&self) -> Result<Intake, AdapterError> {
        let mut queues: Vec<std::collections::VecDeque<Found>> =
            self.find()?.into_values().map(Into::into).collect();
        let per_round = self.config.files_per_station.max(1);
        let mut total = Intake::default();
        while queues.iter().any(|q| !q.is_empty()) {
            for q in &mut queues {
                for _ in 0..per_round {
                    let Some(f) = q.pop_front() else { break };
                    // One file that cannot be taken (its rights changed, a disk error) is set
                    // aside in failed/ with a dead letter naming it — looking again would not
                    // help — and the others go on. The bus failing stops the look (nothing is
                    // moved that was not stored); so does a file that cannot even be moved.
                    let i = match self.take(&f.path).await {
                        Ok(i) => i,
                        Err(e @ AdapterError::Bus(_)) => return Err(e),
                        Err(e) => {
                            let name = f
                                .path
                                .file_name()
                                .map(|n| n.to_string_lossy().to_string())
                                .unwrap_or_default();
                            let reason = format!("could not be taken: {e}");
                            match self
                                .refuse(&f.path, &name, reason, name.clone().into_bytes())
                                .await
                            {
                                Ok(i) => i,
                                Err(e @ AdapterError::Bus(_)) => return Err(e),
                                Err(e) => {
                                    warn!(adapter = SUBSYSTEM, file = %f.path.display(), error = %e, "could not be taken nor set aside: left for the next look");
                                    continue;
                                }
                            }
                        }
                    };
                    total.files += 1;
                    total.tally.add(i.tally);
                    total.unreadable += i.unreadable;
                    total.marked += i.marked;
                }
            }
        }
        Ok(total)
    }

    /// One data file: published, then moved (see the module docs).
    pub async fn take(&self, path: &Path) -> Result<Intake, AdapterError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut intake = Intake::default();
        let bytes =
            match read_data_file(path)? {
                Read::Bytes(b) => b,
                Read::TooLarge(size) => {
                    // Not a datalogger's file (a few kilobytes every few minutes): set aside, named.
                    return self.refuse(
                    path,
                    &name,
                    format!("{size} bytes or more, more than a data file holds ({MAX_FILE_BYTES})"),
                    name.clone().into_bytes(),
                )
                .await;
                }
                Read::NotAFile => {
                    return self
                        .refuse(
                            path,
                            &name,
                            "not a plain file".into(),
                            name.clone().into_bytes(),
                        )
                        .await
                }
            };
        // An upload still writing its last line is left for the next look (for a while).
        let unfinished = !bytes.is_empty() && !bytes.ends_with(b"\n");
        let age = std::fs::symlink_metadata(path)
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        if unfinished && age < UNFINISHED_WAIT {
            return Ok(Intake::default());
        }
        let file = match parse_name(&name) {
            Ok(f) => f,
            Err(reason) => return self.refuse(path, &name, reason, bytes).await,
        };
        // A station writes under its own folder (the layout's <station>/<yyyy>/<MM>/<dd>/):
        // a file naming another station is not taken for it.
        let inbox = self.config.inbox.as_deref().unwrap_or(Path::new("."));
        let folder = path
            .strip_prefix(inbox)
            .ok()
            .and_then(|rel| rel.components().next())
            .map(|c| c.as_os_str().to_string_lossy().to_string());
        if folder.as_deref() != Some(file.station.as_str()) {
            return self
                .refuse(
                    path,
                    &name,
                    format!("not under its station's folder {}/", file.station),
                    bytes,
                )
                .await;
        }
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .refuse(path, &name, format!("not UTF-8 text: {e}"), bytes.clone())
                    .await
            }
        };
        let (readings, bad) = parse_lines(text, chrono::Utc::now().with_timezone(&files::local()));
        // The first lines that cannot be read each, then one for the rest (a file of garbage
        // is not a flood of dead letters).
        for (n, line, reason) in bad.iter().take(MAX_BAD_LINES) {
            self.unreadable(&format!("{name} line {n}"), line.as_bytes(), reason.clone())
                .await?;
        }
        if bad.len() > MAX_BAD_LINES {
            let rest = bad.len() - MAX_BAD_LINES;
            self.unreadable(
                &format!("{name} lines after {}", bad[MAX_BAD_LINES - 1].0),
                &bytes,
                format!("{rest} more lines could not be read"),
            )
            .await?;
        }
        intake.unreadable = bad.len();
        intake.marked = readings
            .iter()
            .filter(|r| r.status != files::Status::Measuring)
            .count();
        let drafts = readings
            .iter()
            .map(|r| files::to_event(&file.station, &name, r))
            .collect();
        intake.tally = publish_all(&self.publisher, drafts).await?;
        intake.tally.record(&self.outcomes);
        self.outcomes.dead_lettered.add(intake.unreadable as u64);
        let whole_file_unreadable = readings.is_empty() && !bad.is_empty();
        self.move_to(
            path,
            if whole_file_unreadable {
                "failed"
            } else {
                "processed"
            },
        )?;
        Ok(intake)
    }

    /// A whole file not taken: its digest and the reason in the DLQ, the file to `failed/`.
    async fn refuse(
        &self,
        path: &Path,
        name: &str,
        reason: String,
        bytes: Vec<u8>,
    ) -> Result<Intake, AdapterError> {
        self.unreadable(name, &bytes, reason).await?;
        self.move_to(path, "failed")?;
        Ok(Intake {
            unreadable: 1,
            ..Default::default()
        })
    }

    /// Keeps a trace of what could not be read in the DLQ: its digest and the reason.
    async fn unreadable(
        &self,
        what: &str,
        bytes: &[u8],
        reason: String,
    ) -> Result<(), AdapterError> {
        let letter = DeadLetter::unreadable_digest(
            self.publisher.source(),
            &files::reading_type().to_string(),
            what,
            bytes,
            format!("{what} could not be read: {reason}"),
        );
        warn!(adapter = SUBSYSTEM, input = what, %reason, "unreadable monitoring data kept in the DLQ (digest only)");
        self.publisher.keep_dead_letter(&letter).await?;
        Ok(())
    }

    /// Moves a taken file under `processed/` or `failed/`, keeping its path under the inbox.
    fn move_to(&self, path: &Path, to: &str) -> Result<(), AdapterError> {
        let inbox = self.config.inbox.as_deref().unwrap_or(Path::new("."));
        let rel = path.strip_prefix(inbox).unwrap_or(path);
        let dest = inbox.join(to).join(rel);
        let fail = |e: std::io::Error| AdapterError::Source {
            url: path.display().to_string(),
            reason: format!("moving to {}: {e}", dest.display()),
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        std::fs::rename(path, &dest).map_err(fail)
    }

    /// Folds what `DEVICES` holds after the kept position into the analysis and publishes
    /// the thresholds crossed; keeps the new position with the analysis. Returns how many
    /// thresholds were crossed or cleared.
    pub async fn analyse(&self) -> Result<usize, AdapterError> {
        let Some(config) = &self.config.analysis else {
            return Ok(0);
        };
        let mut state: AnalysisState = self.state.get("analysis").await?.unwrap_or_default();
        let mut crossings = 0;
        loop {
            let batch = self
                .reader
                .batch(
                    "DEVICES",
                    state.sequence + 1,
                    Some("egov.devices.reading.>"),
                    500,
                )
                .await?;
            let Some(last) = batch.messages.last().map(|m| m.sequence) else {
                return Ok(crossings);
            };
            let mut drafts = Vec::new();
            for m in &batch.messages {
                let Some(r) = analysed_reading(m) else {
                    continue;
                };
                drafts.extend(
                    state
                        .analyser
                        .feed(&r, &config.alarm_levels)
                        .iter()
                        .map(super::analysis::Crossing::to_event),
                );
            }
            crossings += drafts.len();
            // Published before the position moves: after a crash they are published again,
            // with the same ids (nothing twice).
            publish_all(&self.publisher, drafts).await?;
            state.sequence = last;
            self.state.put("analysis", &state).await?;
            if batch.pending == 0 {
                return Ok(crossings);
            }
        }
    }

    /// Looks at the folder and the stream every `poll_interval_secs` until `shutdown`.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdapterError> {
        let interval = Duration::from_secs(self.config.poll_interval_secs.max(1));
        crate::poll::every(
            SUBSYSTEM,
            "monitoring files",
            interval,
            shutdown,
            || async {
                // The analysis and the files apart: one failing does not stop the other.
                match self.analyse().await {
                    Ok(0) => {}
                    Ok(crossed) => info!(
                        adapter = SUBSYSTEM,
                        crossed, "thresholds crossed or cleared"
                    ),
                    Err(e) => warn!(adapter = SUBSYSTEM, error = %e, "analysis: tried again at the next look"),
                }
                let i = self.poll_inbox().await?;
                if i.files > 0 {
                    info!(
                        adapter = SUBSYSTEM,
                        files = i.files,
                        published = i.tally.published,
                        duplicates = i.tally.duplicates,
                        marked = i.marked,
                        dead_lettered = i.tally.dead_lettered + i.unreadable,
                        "monitoring files"
                    );
                }
                Ok(())
            },
        )
        .await
    }
}

/// A reading of `DEVICES` (structured CloudEvent) as the analysis takes it.
fn analysed_reading(m: &lienthong_bus::reader::StoredMessage) -> Option<super::analysis::Reading> {
    let event: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
    let d = event.get("data")?;
    Some(super::analysis::Reading {
        station: d.get("station")?.as_str()?.to_string(),
        parameter: d.get("parameter")?.as_str()?.to_string(),
        value: d.get("value")?.as_f64()?,
        unit: d.get("unit")?.as_str()?.to_string(),
        measured_at: chrono::DateTime::parse_from_rfc3339(d.get("measured_at")?.as_str()?).ok()?,
        measuring: d.get("status")?.as_str()? == "measuring",
        stored_at: chrono::DateTime::parse_from_rfc3339(&m.stored_at).ok()?,
    })
}
