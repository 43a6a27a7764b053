//! Open data: the provincial CKAN catalogue.
//!
//! - [`ckan`]: datasets and their mapping (published, updated with what changed, withdrawn).
//! - [`adapter`]: `package_search` polling ([`OpenDataAdapter`]).
//! - [`simulator`]: a CKAN stand-in ([`CkanSimulator`]).

pub mod adapter;
pub mod ckan;
pub mod demo;
pub mod simulator;

pub use adapter::{OpenDataAdapter, OpenDataConfig};
pub use simulator::CkanSimulator;
