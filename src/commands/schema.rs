use std::process::ExitCode;

use clap::Subcommand;

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile every schema, validate every example, and check that each new version of an
    /// event's schema accepts what the previous one did; exit 1 on any problem.
    Check,
}

pub async fn run(global: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
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
                    "{} schemas compile; {examples} examples behave as named; every new version accepts what the previous one did",
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
