//! `lienthong standby …`: making a standby centre the centre after a disaster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use lienthong::backup;
use lienthong::standby::{self, Secrets};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the standby (its `site up --role standby` stopped, the centre lost) the centre:
    /// every mirror becomes the stream the centre had, the audit chains resume after what
    /// reached the standby. Then run `lienthong up --data DATA` on it, with the centre's
    /// addresses (or have the sites and adapters use the standby's).
    Promote {
        /// The standby's data folder (its `site up --data`).
        #[arg(long, default_value = "site-data")]
        data: PathBuf,
        /// A backup taken with `--secrets-from` (the newest): its secrets — the roles'
        /// passwords, the audit signing key — become the promoted centre's, so adapters,
        /// agencies and auditors keep their credentials. Without it the data folder's
        /// credentials must already hold the centre's audit key.
        #[arg(long, value_name = "BACKUP_DIR", requires = "identity")]
        secrets: Option<PathBuf>,
        /// The key the backup's secrets are encrypted to (`lienthong backup key`).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Promote {
            data,
            secrets,
            identity,
            json,
        } => {
            let identity = identity
                .as_deref()
                .map(backup::secrets::read_identity)
                .transpose()?;
            let secrets = match (&secrets, &identity) {
                (Some(backup), Some(identity)) => Some(Secrets { backup, identity }),
                _ => None,
            };
            let promotion = standby::promote(&data, secrets, global.registry()?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&promotion)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "standby {} promoted in {:.2} s; what it holds:",
                promotion.site, promotion.seconds
            );
            for s in &promotion.streams {
                let lag = match (s.lag, s.last_contact) {
                    (0, _) => String::new(),
                    (n, Some(t)) => format!(
                        "; the centre had {n} more at the last contact ({})",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    (n, None) => format!("; the centre had {n} more at the last contact"),
                };
                let lost = match s.lost_checkpointed {
                    Some((a, b)) => format!(
                        "; sequences {a}..={b} were checkpointed by the centre and did not reach the standby (lost with it; the chain resumes after {})",
                        a - 1
                    ),
                    None => String::new(),
                };
                println!(
                    "  {:<24} {:>8} messages, to sequence {}{lag}{lost}",
                    s.name, s.messages, s.last_seq
                );
            }
            if let Some(t) = promotion.recovery_point {
                println!(
                    "recovery point: the newest message held was stored at {}; what the centre stored after may be lost",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                );
            }
            println!(
                "now run the centre on it: lienthong up --data {} (with the centre's addresses and certificates)",
                data.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
