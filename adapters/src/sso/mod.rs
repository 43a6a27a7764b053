//! Central sign-on (Keycloak): user events pushed by an event-listener webhook, admin events
//! pulled from the admin events API, user ids pseudonymised.
//!
//! - [`keycloak`]: the events and their mapping ([`Pseudonymizer`]).
//! - [`adapter`]: push endpoint and admin-events polling ([`SsoAdapter`]).
//! - [`simulator`]: a Keycloak stand-in: token and admin-events endpoints ([`KeycloakSimulator`]).

pub mod adapter;
pub mod demo;
pub mod keycloak;
pub mod simulator;

pub use adapter::{SsoAdapter, SsoConfig};
pub use keycloak::Pseudonymizer;
pub use simulator::KeycloakSimulator;
