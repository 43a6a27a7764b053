use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile every schema, validate every example, and check that each new version of an
    /// event's schema accepts what the previous one did; exit 1 on any problem.
    Check,
    /// Add the next version of a registered subsystem's event type (TYPE) from a JSON Schema
    /// FILE, refused when it breaks the subsystem's compatibility mode (backward by default:
    /// the new version must accept every event the previous one did), naming each breaking
    /// field or constraint. Readers, the catalogue and the generic read model follow.
    Register {
        /// The event type, e.g. vn.egov.gauges.level.measured.
        #[arg(value_name = "TYPE")]
        ty: String,
        file: std::path::PathBuf,
        #[command(flatten)]
        who: super::agency::Who,
    },
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Register { ty, file, who } => {
            use anyhow::Context as _;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let (sequence, version) = super::subsystem::admin(global, &who)
                .await?
                .register_schema(&ty, schema)
                .await?;
            println!("{ty} v{version} registered (REGISTRY sequence {sequence}); publishers validate against it from now on");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let registry = global.registry()?;
            for (ty, version, id) in registry.event_types() {
                println!("ok  {ty} v{version}  {id}");
            }
            let evolution = registry.check_evolution();
            for p in &evolution {
                println!("FAIL {p}");
            }
            let problems = registry.check_examples();
            let examples = registry.examples().len();
            for p in &problems {
                println!("FAIL {p}");
            }
            if problems.is_empty() && evolution.is_empty() {
                println!(
                    "{} schemas compile; {examples} examples behave as named; every new version accepts what the previous one did (or names the upcast its readers apply)",
                    registry.files().count()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "{} of {examples} examples misbehave; {} evolution problem(s)",
                    problems.len(),
                    evolution.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
