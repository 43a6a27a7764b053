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
    /// An input that cannot be read; it was kept in the DLQ (as a digest when it may hold
    /// personal or secret data). Sending it again will not help.
    #[error("{what} could not be read (kept in the DLQ): {source}")]
    Unreadable {
        what: String,
        #[source]
        source: RecordError,
    },
}

impl AdapterError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Source { .. } | Self::State { .. } => true,
            Self::Bus(e) => e.is_transient(),
            Self::Config(_) | Self::Unreadable { .. } => false,
        }
    }
}

/// Why a record from a subsystem cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not well-formed XML, JSON or form data.
    #[error("not well-formed {format}{}: {reason}", .at.map(|a| format!(" (at byte {a})")).unwrap_or_default())]
    Malformed {
        format: &'static str,
        at: Option<u64>,
        reason: String,
    },
    /// A part the mapping needs is not there.
    #[error("{0} is missing")]
    Missing(String),
    /// A value that cannot be used.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl RecordError {
    pub fn missing(what: impl Into<String>) -> Self {
        Self::Missing(what.into())
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn malformed(format: &'static str, at: Option<u64>, reason: impl Into<String>) -> Self {
        Self::Malformed {
            format,
            at,
            reason: reason.into(),
        }
    }
}
