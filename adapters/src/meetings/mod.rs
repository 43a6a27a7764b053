//! Online meetings (*họp trực tuyến*): the city's meetings with its 18 wards and communes, as
//! BigBlueButton and Jitsi report them. Participants are pseudonymised; the agency (and ward)
//! each represents is kept.
//!
//! - [`bbb`]: bbb-webhooks posts, their checksums, and their events ([`bbb::map_event`]).
//! - [`jitsi`]: prosody event_sync posts, rooms' runs ([`jitsi::Rooms`]), their events.
//! - [`mapping`]: the four event types, meeting kinds, organs and wards.
//! - [`adapter`]: the push endpoints ([`MeetingsAdapter`]).
//! - [`demo`]: the demo city's meetings in 2023.

pub mod adapter;
pub mod bbb;
pub mod demo;
pub mod jitsi;
pub mod mapping;

pub use adapter::{MeetingsAdapter, MeetingsConfig};
