//! The city's monitoring stations (environmental monitoring, water levels): a subsystem
//! **registered on the running bus**, not compiled in (`subsystems/devices/devices.toml`,
//! `lienthong subsystem register`). Its event types and schemas come from the bus's registry;
//! this adapter only reads the stations' own formats.
//!
//! - [`files`]: the data files of automatic continuous monitoring stations (10/2021/TT-BTNMT).
//! - [`adapter`]: the folder the stations' FTP transfers fill, taken in once each, and the
//!   analysis of what the stream holds ([`DevicesAdapter`](adapter::DevicesAdapter)).
//! - [`analysis`]: hourly averages against QCVN 05:2023/BTNMT and water-level alarm levels.

pub mod adapter;
pub mod analysis;
pub mod files;

pub use adapter::{DevicesAdapter, DevicesConfig};

/// The registered subsystem's name.
pub const SUBSYSTEM: &str = "devices";
