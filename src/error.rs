use lienthong_adapters::AdapterError;
use lienthong_audit::AuditError;
use lienthong_bus::BusError;
use lienthong_replay::ReplayError;

/// Why the stack could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// An address is taken.
    #[error("{what} address {addr} is in use: {hint}")]
    AddressInUse {
        what: String,
        addr: String,
        hint: String,
    },
    /// A component stopped while the stack ran.
    #[error("{component} stopped: {reason}")]
    Stopped { component: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A configuration (an inventory, an option) that cannot be used: what and why.
    #[error("{0}")]
    Config(String),
    #[error("a task ended abnormally: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl StackError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
