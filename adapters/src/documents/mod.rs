//! Documents (*quản lý văn bản và điều hành*): edXML exchange (QCVN 102:2016) and the
//! document register.
//!
//! - [`edxml`]: packages and status messages, and their events.
//! - [`register`]: the register export; secret documents withheld.
//! - [`adapter`]: folder polling and HTTP push ([`DocumentsAdapter`]).

pub mod adapter;
pub mod edxml;
pub mod register;

pub use adapter::{DocumentsAdapter, DocumentsConfig};
