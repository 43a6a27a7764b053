//! # Lienthong bus core
//!
//! Everything that talks to NATS on behalf of adapters, the ingress, the replay service and
//! the command line. Nothing here knows an adapter or a projection.
//!
//! # Layout
//! - [`subject`]: event types, subjects and the reversible key encoding.
//! - [`conformance`]: CloudEvents 1.0 conformance of envelopes received from outside.
//! - [`envelope`]: CloudEvents ↔ NATS binding (structured out; structured and binary in).
//! - [`schema`]: the JSON Schema registry ([`SchemaRegistry`]), embedded from `schemas/`.
//! - [`evolution`]: compatibility rules between versions of an event's schema.
//! - [`registry`]: the subsystems, each described once; streams, roles, permissions derived.
//! - [`catalog`]: the AsyncAPI 3.0 event catalogue, generated from the registry and schemas.
//! - [`roles`]: roles and permissions derived from the registry; the server's accounts.
//! - [`agencies`]: agencies as data: grants as events, their own accounts, the agent that
//!   applies the registry to a running server.
//! - [`access`]: refusals — what the server would not let a connection do, at once.
//! - [`reader`]: reading a stream by batched direct get (no consumer).
//! - [`prepared`]: an event checked and encoded, with its deterministic message id.
//! - [`publisher`]: validate → envelope → publish with dedupe id → PubAck ([`Publisher`]).
//! - [`batch`]: atomic batch publishing for bulk imports and backfills.
//! - [`dead_letter`]: what failed validation, kept in the `DLQ` stream ([`DeadLetter`]).
//! - [`topology`]: the streams and KV bucket of the contract, provisioned idempotently.
//! - [`subscriber`]: decoding what comes off a stream; durable consumers ([`Subscriber`]).
//! - [`credentials`]: roles, generated credentials, connecting ([`ConnectSettings`]).
//! - [`server`]: the embedded nats-server supervisor ([`NatsServer`]).
//! - [`tls`]: certificates (`pki`), TLS on every link beyond loopback, HTTPS listeners.
//! - [`shutdown`]: stopping long-running work together ([`Shutdown`]).
//! - [`metrics`]: counters and every input record's outcome ([`Outcomes`]), for `/metrics`.
//! - [`error`]: the one error type ([`BusError`]).

pub mod access;
pub mod agencies;
pub mod arena_json;
pub mod batch;
pub mod catalog;
pub mod conformance;
pub mod credentials;
pub mod dead_letter;
pub mod envelope;
pub mod error;
pub mod evolution;
pub mod health;
pub mod jsapi;
pub mod metrics;
pub mod prepared;
pub mod publisher;
pub mod reader;
pub mod registry;
mod rfc3339;
pub mod roles;
pub mod schema;
pub mod server;
pub mod shutdown;
pub mod sites;
pub mod snapshot;
pub mod subject;
pub mod subscriber;
pub mod tls;
pub mod topology;

pub use access::Refusals;
pub use cloudevents;
pub use credentials::{ConnectSettings, CredentialSet};
pub use dead_letter::DeadLetter;
pub use envelope::Classification;
pub use error::{BusError, Result, Violation};
pub use metrics::{Metrics, Outcomes};
pub use publisher::{EventDraft, Published, Publisher, RetryPolicy};
pub use reader::StreamReader;
pub use schema::SchemaRegistry;
pub use server::NatsServer;
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use subject::{EventSubject, EventType};
pub use subscriber::{ReceivedEvent, Subscriber};
pub use topology::{provision, Provisioned};
