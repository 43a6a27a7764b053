use lienthong_bus::BusError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("read store: {0}")]
    Store(#[from] sled::Error),
    #[error("read store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("stored value under {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{operation}: {reason}")]
    Nats { operation: String, reason: String },
    #[error(transparent)]
    Audit(#[from] lienthong_audit::AuditError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = ReplayError> = std::result::Result<T, E>;
