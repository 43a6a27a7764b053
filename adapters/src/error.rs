use lienthong_bus::BusError;

/// Why an adapter could not do its work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The adapter's configuration is wrong; fix it and start again.
    #[error("configuration: {0}")]
    Config(String),
    /// The subsystem did not answer, or answered with an error. Tried again next poll.
    #[error("source {url}: {reason}")]
    Source { url: String, reason: String },
    /// The bus refused or was unavailable.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Reading or writing the adapter's cursor in ADAPTER_STATE failed.
    #[error("adapter state ({key}): {reason}")]
    State { key: String, reason: String },
}

impl AdapterError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Source { .. } | Self::State { .. } => true,
            Self::Bus(e) => e.is_transient(),
            Self::Config(_) => false,
        }
    }
}
