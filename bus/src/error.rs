//! The bus's one error type. Callers `match` on the variant: a schema violation, a
//! concurrency conflict and an unavailable server are different things to do about.

use serde::{Deserialize, Serialize};

/// One schema violation: where in the data (a JSON pointer) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON pointer into the event data, `""` for the root.
    pub pointer: String,
    /// What is wrong there, in words.
    pub message: String,
    /// JSON pointer into the schema, naming the keyword that failed.
    pub schema_pointer: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

fn list(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// Data did not validate against its schema. Nothing was published to the main stream;
    /// `dead_letter` holds the DLQ sequence where the rejected input was kept.
    #[error("{ty} (id {id}) is invalid: {}", list(.violations))]
    Invalid {
        ty: String,
        id: String,
        violations: Vec<Violation>,
        dead_letter: Option<u64>,
    },
    /// Optimistic concurrency: the aggregate moved on since the sequence the caller expected.
    #[error("conflict on {filter}: expected last sequence {expected}, the aggregate has moved on; reload and retry")]
    Conflict { filter: String, expected: u64 },
    /// The server did not confirm in time (after retries). The event may or may not be
    /// stored; publishing again with the same id is safe.
    #[error("{operation}: NATS unavailable after {attempts} attempt(s): {reason}; check that nats-server is running and reachable")]
    Unavailable {
        operation: String,
        attempts: u32,
        reason: String,
    },
    /// Larger than the server takes (payload and headers): permanent; publishing it again
    /// cannot help.
    #[error("{what} is {size} bytes with its headers; the server takes at most {max}")]
    TooLarge {
        what: String,
        size: usize,
        max: usize,
    },
    /// The server refused for good (no stream for the subject, no permission).
    #[error("{operation} refused: {reason}")]
    Refused { operation: String, reason: String },
    /// The server refused this role an operation (a permission it was not given). Permanent
    /// for this role: ask the operator for the grant, or use the role meant for it.
    #[error("{role} may not {what} (the server refused {subject:?})")]
    Forbidden {
        role: String,
        what: String,
        subject: String,
    },
    /// No schema is registered for this type (and version).
    #[error("no schema registered for {ty}{}; run `lienthong schema check` and see schemas/", .version.map(|v| format!(" version {v}")).unwrap_or_default())]
    UnknownSchema { ty: String, version: Option<u32> },
    /// A schema file is broken (bad JSON, no `$id`, does not compile, bad `$ref`).
    #[error("schema {path}: {reason}")]
    Schema { path: String, reason: String },
    #[error("subject {subject:?}: {reason}")]
    Subject { subject: String, reason: String },
    #[error("event type {ty:?}: {reason}")]
    EventType { ty: String, reason: String },
    /// A message on the bus is not a readable CloudEvent.
    #[error("not a CloudEvent: {reason}")]
    Envelope { reason: String },
    /// An existing stream differs from the contract in a setting that must not change silently.
    #[error("stream {stream} exists with settings that differ from the contract: {}. Lienthong will not change these silently; fix the stream by hand (or start from a fresh store) and provision again", .differences.join("; "))]
    Topology {
        stream: String,
        differences: Vec<String>,
    },
    /// Configuration or credentials are missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// A certificate, key or TLS setting that cannot be used: which file, and why.
    #[error("TLS: {what}: {reason}")]
    Tls { what: String, reason: String },
    /// A listener beyond loopback without TLS, and plaintext was not asked for by name.
    #[error("{what} would listen on {addr} without TLS; beyond loopback every link is encrypted. Give it a certificate with --tls-cert FILE --tls-key FILE (and --tls-ca FILE; from `lienthong pki issue` or the city's own PKI), or allow plaintext explicitly with --insecure-plaintext")]
    Plaintext { what: String, addr: String },
    /// The embedded nats-server could not be found, is too old, or failed to start.
    #[error("nats-server: {0}")]
    Server(String),
    #[error("{operation}: {source}")]
    Nats {
        operation: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl BusError {
    pub fn nats(
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

    /// True when trying again later may succeed (the sender should retry, not give up).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::Nats { .. } | Self::Io { .. }
        )
    }
}

pub type Result<T, E = BusError> = std::result::Result<T, E>;

/// Runs `f` again while it fails transiently (up to 10 tries, 0.1 s more wait each, ~4.5 s
/// in all): a server reloading its configuration — every agency or site change makes each
/// server reload — answers no JetStream request, or says a stream does not exist, for a
/// moment.
pub async fn retrying<T, F, Fut>(f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(e) if attempt < 10 && e.is_transient() => {
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await
            }
            other => return other,
        }
    }
}
