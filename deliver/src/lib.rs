//! # Lienthong webhook delivery
//!
//! Most agencies' systems are not NATS clients. A webhook subscription POSTs the events of
//! an agency's copy of a stream to the agency's HTTP receiver, as CloudEvents (binary mode by
//! default), signed as Standard Webhooks, at least once, in stream order, resuming from a
//! durable position after any restart.
//!
//! - [`admin`]: subscribe, list, unsubscribe (the operator, `lienthong agency subscribe …`).
//! - [`service`]: the deliverer (`lienthong deliver`, also run by `lienthong up`): one
//!   worker per subscription in the registry.
//! - [`worker`]: one subscription: fetch, POST, acknowledge; exponential backoff; failing
//!   and recovered recorded on the bus; 410 Gone ends it.
//! - [`request`]: an event as an HTTP request (the CloudEvents HTTP binding).
//! - [`signature`]: Standard Webhooks signatures and secrets.
//! - [`store`]: the receiver's URL and secret, kept off the bus.

pub mod admin;
pub mod request;
pub mod service;
pub mod signature;
pub mod store;
pub mod worker;

pub use service::{roots_of, DeliverOptions, Deliverer};
pub use signature::Secret;

/// What can go wrong delivering.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Bus(#[from] lienthong_bus::BusError),
    #[error("{operation}: {reason}")]
    Nats { operation: String, reason: String },
    #[error("webhook secret: {0}")]
    Secret(String),
    #[error("{0}")]
    Request(String),
    #[error("the event cannot be sent: {0}")]
    Event(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

impl DeliverError {
    pub(crate) fn nats(operation: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Nats {
            operation: operation.into(),
            reason: e.to_string(),
        }
    }
}
