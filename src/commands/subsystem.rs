//! `lienthong subsystem …`: subsystems registered on a running bus (no rebuild, no restart).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use lienthong_bus::registry::admin::RegistryAdmin;
use lienthong_bus::registry::spec::SubsystemSpec;

use super::agency::Who;
use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a subsystem described in SPEC (TOML or JSON: name, stream, titles, event
    /// types with their schemas, key and time pointers, retention, classification, grants):
    /// creates its stream, its publishing role and credentials, its ingress token, its audit
    /// chain, catalogue entries and generic read model. Recorded on REGISTRY. Running it
    /// again with the same SPEC changes nothing.
    Register {
        spec: PathBuf,
        /// Check SPEC only (schemas compile, pointers found); nothing is sent.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        who: Who,
    },
    /// The subsystems registered on the running bus.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn admin(global: &Global, who: &Who) -> anyhow::Result<RegistryAdmin> {
    let session = global.session("lienthong-subsystem").await?;
    Ok(RegistryAdmin::new(
        session.client.clone(),
        session.refusals.clone(),
        global.registry()?,
        &who.credentials_dir(global),
        &session.settings.url,
        &who.by(),
    ))
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Register { spec, check, who } => {
            let spec = SubsystemSpec::read(&spec)?;
            if check {
                println!(
                    "{}: {} event type(s), stream {}: the description is well formed",
                    spec.name,
                    spec.events.len(),
                    spec.stream
                );
                return Ok(ExitCode::SUCCESS);
            }
            let out = admin(global, &who).await?.register(&spec).await?;
            if out.unchanged {
                println!(
                    "subsystem {} is already registered as described (REGISTRY sequence {}): nothing changed",
                    spec.name, out.sequence
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "subsystem {} registered (REGISTRY sequence {}): {}",
                spec.name, out.sequence, out.stream
            );
            for e in &spec.events {
                println!("  {} v{}", e.ty, e.version);
            }
            println!(
                "  publishers connect as {} with {}",
                out.role,
                out.credentials.display()
            );
            println!(
                "  the HTTP ingress takes their events with the bearer token in {}",
                out.ingress_token.display()
            );
            println!(
                "  try: lienthong tail {} --env data/credentials/auditor.env --no-follow",
                spec.stream
            );
        }
        Command::List { json } => {
            let session = global.session("lienthong-subsystem").await?;
            lienthong_bus::registry::live::load(&session.reader).await?;
            let list = lienthong_bus::registry::live::registrations();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!(
                    "no subsystem registered on this bus (the compiled ones: {})",
                    lienthong_bus::registry::names_for_help()
                );
            } else {
                println!(
                    "{:<16} {:<16} {:<26} {:<24} types",
                    "subsystem", "stream", "registered", "by"
                );
                for r in list {
                    let types: Vec<String> = r
                        .spec
                        .latest_events()
                        .iter()
                        .map(|e| format!("{} v{}", e.ty, e.version))
                        .collect();
                    println!(
                        "{:<16} {:<16} {:<26} {:<24} {}",
                        r.spec.name,
                        r.spec.stream,
                        r.registered_at.to_rfc3339(),
                        r.registered_by,
                        types.join(", ")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
