//! `lienthong backup [--out DIR] | backup verify DIR` and `lienthong restore DIR`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use lienthong::backup::{self, Progress};

use super::Global;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    check: Option<Check>,
    /// The new folder the backup goes into (as the operator: --env
    /// data/credentials/operator.env).
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// The audit public key: a file holding its 64 hex digits, or the digits. Default:
    /// `audit-public.key` in the data folder of the --env file (data/audit-public.key).
    #[arg(long, env = "LIENTHONG_AUDIT_PUBLIC_KEY")]
    audit_public_key: Option<PathBuf>,
    /// Add the secrets of this data folder (its credentials/: passwords, tokens, the audit
    /// signing key, pseudonymisation keys), encrypted to --recipient.
    #[arg(long, value_name = "DATA", requires = "recipient")]
    secrets_from: Option<PathBuf>,
    /// The age public key (age1…) the secrets are encrypted to (`lienthong backup key`).
    #[arg(long, requires = "secrets_from")]
    recipient: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum Check {
    /// Check a backup offline: it is restored into a private, temporary nats-server; every
    /// archive's digest, every stream of the contract, the restored sequences, the hash
    /// chains against the signed checkpoints. Exit 0: good; 1: what is wrong is listed.
    Verify {
        dir: PathBuf,
        /// The key the secrets were encrypted to: they are decrypted and checked too.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a key for backups' secrets: the identity goes into FILE (0600; keep it apart
    /// from the backups), its recipient (age1…) is printed for `backup --recipient`.
    Key {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup folder.
    dir: PathBuf,
    /// Restore into this data folder, then run `lienthong up --data` on it. Without it, onto
    /// the running server or cluster of --env / NATS_URL (the operator), whose streams must
    /// be empty or absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Copies of every stream on the target (3 on a cluster); default: as backed up.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=5))]
    replicas: Option<u16>,
    /// With --data: restore into the stores of a cluster of N nodes (data/nats-1…N), for
    /// `up --cluster N --data`; every stream at N replicas unless --replicas says otherwise.
    #[arg(long, requires = "data", value_parser = clap::value_parser!(u16).range(1..=7))]
    cluster: Option<u16>,
    /// The key the backup's secrets were encrypted to: they are put back into --data.
    #[arg(long, value_name = "FILE", requires = "data")]
    identity: Option<PathBuf>,
}

/// Progress on the terminal: a bar per stream, a line when each is done.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> anyhow::Result<Self> {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(
            "{msg:>22} {bytes:>10} {binary_bytes_per_sec}",
        )?);
        Ok(Self(bar))
    }
}

impl Progress for Bar {
    fn stream(&self, name: &str, expected: u64) {
        self.0.set_message(name.to_string());
        self.0.set_length(expected);
        self.0.set_position(0);
    }
    fn bytes(&self, done: u64) {
        self.0.set_position(done);
    }
    fn done(&self, name: &str, bytes: u64, seconds: f64) {
        let line = format!("{name:>22} {bytes:>12} bytes {seconds:>7.2} s");
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }
}

/// The audit public key's digits, from a file or as given.
fn audit_key(arg: Option<&Path>, env: Option<&Path>) -> anyhow::Result<String> {
    let path = match (arg, env) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(env)) => env
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("audit-public.key"))
            .context("no data folder above the --env file: pass --audit-public-key")?,
        (None, None) => anyhow::bail!(
            "the audit public key is needed (the backup is checked with it): pass \
             --audit-public-key data/audit-public.key"
        ),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) if path.to_string_lossy().len() == 64 => path.to_string_lossy().into_owned(),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "reading the audit public key {} (pass --audit-public-key)",
                    path.display()
                )
            })
        }
    };
    Ok(text.trim().to_string())
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match (args.check, args.out) {
        (
            Some(Check::Verify {
                dir,
                identity,
                json,
            }),
            _,
        ) => verify(&dir, identity.as_deref(), json).await,
        (Some(Check::Key { out }), _) => {
            let recipient = backup::secrets::keygen(&out)?;
            println!("{recipient}");
            eprintln!(
                "the key is in {}: keep it apart from the backups; `backup --secrets-from data \
                 --recipient {recipient}` encrypts to it",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(out)) => {
            let key = audit_key(args.audit_public_key.as_deref(), global.env.as_deref())?;
            let session = global.session("lienthong-backup").await?;
            let began = Instant::now();
            let bar = Bar::new()?;
            let secrets = match (&args.secrets_from, &args.recipient) {
                (Some(data), Some(recipient)) => Some(backup::SecretsFrom { data, recipient }),
                _ => None,
            };
            let manifest = backup::take(&session.client, &out, &key, secrets, &bar).await?;
            bar.0.finish_and_clear();
            let bytes: u64 = manifest.streams.iter().map(|p| p.bytes).sum();
            let messages: u64 = manifest.streams.iter().map(|p| p.recorded().0).sum();
            println!(
                "backup of {} streams ({messages} messages, {bytes} bytes) in {:.2} s: {}\n\
                 check it with `lienthong backup verify {}`",
                manifest.streams.len(),
                began.elapsed().as_secs_f64(),
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        (None, None) => anyhow::bail!("say where the backup goes: --out DIR"),
    }
}

async fn verify(dir: &Path, identity: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let began = Instant::now();
    let bar = Bar::new()?;
    let identity = identity.map(backup::secrets::read_identity).transpose()?;
    let report = backup::verify::verify(dir, identity.as_ref(), &bar).await?;
    bar.0.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for r in &report.audit {
            println!("{r}");
        }
        for p in &report.problems {
            println!("PROBLEM: {p}");
        }
        println!(
            "{}: {} — {} streams, {} bytes, taken {}; restored and checked in {:.2} s",
            dir.display(),
            if report.passed() { "good" } else { "NOT GOOD" },
            report.streams,
            report.bytes,
            report.started_at.to_rfc3339(),
            began.elapsed().as_secs_f64()
        );
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn restore(global: &Global, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let opts = backup::restore::Options {
        replicas: args.replicas.map(usize::from),
    };
    let began = Instant::now();
    let bar = Bar::new()?;
    let identity = args
        .identity
        .as_deref()
        .map(backup::secrets::read_identity)
        .transpose()?;
    let restored = match &args.data {
        Some(data) => {
            let nodes = args.cluster.map(usize::from).unwrap_or(1);
            backup::restore::restore_into_data(
                &args.dir,
                data,
                nodes,
                identity.as_ref(),
                &opts,
                &bar,
            )
            .await?
        }
        None => {
            let session = global.session("lienthong-restore").await?;
            let manifest = backup::restore::checked(&args.dir)?;
            backup::restore::restore(&session.client, &args.dir, &manifest, &opts, &bar).await?
        }
    };
    bar.0.finish_and_clear();
    let messages: u64 = restored.iter().map(|r| r.messages).sum();
    println!(
        "restored {} streams ({messages} messages) in {:.2} s{}",
        restored.len(),
        began.elapsed().as_secs_f64(),
        match (&args.data, args.cluster) {
            (Some(d), Some(n)) if n > 1 => format!(
                "; start the bus on it: lienthong up --cluster {n} --data {}",
                d.display()
            ),
            (Some(d), _) => format!("; start the bus on it: lienthong up --data {}", d.display()),
            (None, _) => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}
