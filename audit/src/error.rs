use lienthong_bus::BusError;

/// What can go wrong while auditing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The server refused or did not answer.
    #[error("{operation}: {source}")]
    Nats {
        operation: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A checkpoint, export or key that cannot be read.
    #[error("{what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// A key file that is missing or not a key.
    #[error("key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl AuditError {
    pub(crate) fn nats(
        operation: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Nats {
            operation: operation.into(),
            source: source.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;
