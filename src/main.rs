//! `lienthong`: the one command-line binary. Parses arguments and calls into the crates.

mod commands;

/// mimalloc instead of glibc's allocator: the publish and replay paths allocate many small
/// short-lived values (JSON, headers, keys) across threads, where glibc spent a third of the
/// replay's time in malloc/free and kept freed memory in per-thread arenas (see
/// docs/performance.md for the figures).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lienthong — an event-sourced integration bus for local e-government.
///
/// Every command that talks to NATS reads NATS_URL, NATS_USER and NATS_PASSWORD (or
/// NATS_CREDS) from the environment; `--env FILE` loads them from a credentials file such as
/// data/credentials/auditor.env.
#[derive(Debug, Parser)]
#[command(name = "lienthong", version, propagate_version = true)]
pub struct Cli {
    /// Credentials file (KEY=VALUE lines: NATS_URL, NATS_USER, NATS_PASSWORD).
    #[arg(long, global = true, value_name = "FILE")]
    env: Option<PathBuf>,
    /// Load schemas from this directory instead of the built-in ones.
    #[arg(long, global = true, value_name = "DIR")]
    schemas: Option<PathBuf>,
    /// How logs are written to stderr: `text` (coloured only on a terminal) or `json` (one
    /// object per line, for log collectors).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything on this machine: nats-server, provisioning, adapters, replay, dashboard.
    Up(commands::up::Args),
    /// Provision the contract's streams, or show their state.
    #[command(subcommand)]
    Streams(commands::streams::Command),
    /// Check the schemas: every one compiles, every example behaves as named.
    #[command(subcommand)]
    Schema(commands::schema::Command),
    /// Publish one event (validated; invalid data goes to the DLQ).
    Publish(commands::publish::Args),
    /// Print the events of a stream, and follow it.
    Tail(commands::tail::Args),
    /// Run an adapter.
    #[command(subcommand)]
    Adapter(commands::adapter::Command),
    /// The HTTP CloudEvents ingress (structured, binary and batch modes; per-caller tokens).
    Ingress(commands::ingress::Args),
    /// Run a subsystem simulator (for demos and tests).
    #[command(subcommand)]
    Simulator(commands::simulator::Command),
    /// The replay service: serve the read models, or rebuild them.
    #[command(subcommand)]
    Replay(commands::replay::Command),
    /// Tamper-evident history: verify the streams against signed checkpoints, export them.
    #[command(subcommand)]
    Audit(commands::audit::Command),
    /// Measure the bus against the raw engine on this machine (ratios, latency, memory).
    Bench(commands::bench::Args),
    /// A crash campaign: publish while components are killed with SIGKILL, then count what
    /// was acknowledged, stored, lost and duplicated, and compare the read model with a rebuild.
    Chaos(commands::chaos::Args),
    /// The dead-letter stream: list what was rejected, or send it again.
    #[command(subcommand)]
    Dlq(commands::dlq::Command),
    /// Agencies: grant streams, rotate and revoke credentials, webhook subscriptions.
    #[command(subcommand)]
    Agency(commands::agency::Command),
    /// Subsystems registered on the running bus: `subsystem register SPEC` (stream, role,
    /// schemas, catalogue, generic read model; no rebuild, no restart), `subsystem list`.
    #[command(subcommand)]
    Subsystem(commands::subsystem::Command),
    /// Ward and agency sites: leaf nodes of the hub with their own JetStream domain, working
    /// while the link is down (`site add|list|remove` on the hub, `site up` at the site).
    #[command(subcommand)]
    Site(commands::site::Command),
    /// The shared datasets: verifiable snapshots, publication to CKAN.
    #[command(subcommand)]
    Datasets(commands::datasets::Command),
    /// The hub's admission of what ward sites send (source, schema, ids), as the `admission`
    /// role (`up --leaf-port` runs it).
    Admission(commands::admission::Args),
    /// POST agencies' webhook subscriptions (signed CloudEvents), as the `deliver` role.
    Deliver(commands::deliver::Args),
    /// The event catalogue (AsyncAPI 3.0), generated from the registry and the schemas.
    #[command(subcommand)]
    Catalog(commands::catalog::Command),
    /// Certificates: a city CA, certificates for nodes, HTTP services and sites, and their
    /// expiry (`pki init|issue|status`).
    #[command(subcommand)]
    Pki(commands::pki::Command),
    /// A city's deployment from one inventory: bundles per host, the registrations on the
    /// running hub, a check from outside (`deploy plan|apply|check`).
    #[command(subcommand)]
    Deploy(commands::deploy::Command),
    /// A consistent backup of the running bus (`backup --out DIR`), or its offline check
    /// (`backup verify DIR`).
    Backup(commands::backup::Args),
    /// Bring a backup onto a fresh server or cluster, or into a data folder for `up`.
    Restore(commands::backup::RestoreArgs),
    /// A standby centre: `promote` makes it the centre after a disaster (it mirrors the
    /// centre while `site up --role standby` runs).
    #[command(subcommand)]
    Standby(commands::standby::Command),
}

/// Logs to stderr: colours only when stderr is a terminal (and `NO_COLOR` is unset), or JSON.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,async_nats=warn,sled=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    // SAFETY: called first thing, before any other thread exists. Restores the default
    // SIGPIPE action so `lienthong tail … | head` ends quietly instead of panicking.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let global = commands::Global {
        env: cli.env,
        schemas: cli.schemas,
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(a) => commands::up::run(&global, a).await,
            Command::Streams(c) => commands::streams::run(&global, c).await,
            Command::Schema(c) => commands::schema::run(&global, c).await,
            Command::Publish(a) => commands::publish::run(&global, a).await,
            Command::Tail(a) => commands::tail::run(&global, a).await,
            Command::Adapter(c) => commands::adapter::run(&global, c).await,
            Command::Ingress(a) => commands::ingress::run(&global, a).await,
            Command::Simulator(c) => commands::simulator::run(&global, c).await,
            Command::Replay(c) => commands::replay::run(&global, c).await,
            Command::Audit(c) => commands::audit::run(&global, c).await,
            Command::Bench(a) => commands::bench::run(&global, a).await,
            Command::Chaos(a) => commands::chaos::run(&global, a).await,
            Command::Dlq(c) => commands::dlq::run(&global, c).await,
            Command::Catalog(c) => commands::catalog::run(&global, c).await,
            Command::Agency(c) => commands::agency::run(&global, c).await,
            Command::Subsystem(c) => commands::subsystem::run(&global, c).await,
            Command::Deliver(a) => commands::deliver::run(&global, a).await,
            Command::Admission(a) => commands::admission::run(&global, a).await,
            Command::Datasets(c) => commands::datasets::run(&global, c).await,
            Command::Site(c) => commands::site::run(&global, c).await,
            Command::Pki(c) => commands::pki::run(c).await,
            Command::Deploy(c) => commands::deploy::run(&global, c).await,
            Command::Backup(a) => commands::backup::run(&global, a).await,
            Command::Restore(a) => commands::backup::restore(&global, a).await,
            Command::Standby(c) => commands::standby::run(&global, c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, without repeating a cause that its parent already quotes.
fn describe(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
