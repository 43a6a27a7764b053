//! Citizen field reports (*phản ánh hiện trường*), Open311 GeoReport v2.
//!
//! - [`open311`]: the records as the subsystem serves them.
//! - [`mapping`]: records → events, pure ([`Mapper`]).
//! - [`client`]: the HTTP client.
//! - [`adapter`]: polling, cursor and publishing ([`FieldReportsAdapter`]).
//! - [`simulator`]: an Open311 server over the fixtures or a synthetic year ([`Open311Simulator`]).
//! - [`synthetic`]: the synthetic year.
//! - [`fixtures`]: the built-in samples.

pub mod adapter;
pub mod client;
pub mod demo;
pub mod fixtures;
pub mod mapping;
pub mod open311;
pub mod simulator;
pub mod synthetic;

pub use crate::AdapterContext;
pub use adapter::{FieldReportsAdapter, FieldReportsConfig, PollReport};
pub use mapping::Mapper;
pub use simulator::{Open311Data, Open311Simulator};
