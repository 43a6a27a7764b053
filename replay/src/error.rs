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
    /// The read models' disk was full and has room again: the store must be opened again
    /// (sled keeps a write error for good). The caller serves again on a new store.
    #[error("the read models' store must be opened again (its disk was full and has room again)")]
    ReopenStore,
}

pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// Whether sled failed because its disk is full (no space, or over quota). sled keeps such an
/// error for good: the store must be opened again once there is room.
pub fn sled_storage_full(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => io_storage_full(io),
        _ => false,
    }
}

fn io_storage_full(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::StorageFull
        || matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        // sled wraps the OS error in a custom one that keeps its kind and its text.
        || io.to_string().contains("No space left on device")
}

impl ReplayError {
    /// Whether this failed because the read models' disk is full.
    pub fn storage_full(&self) -> bool {
        match self {
            Self::Store(e) => sled_storage_full(e),
            Self::Io(io) => io_storage_full(io),
            _ => false,
        }
    }
}
