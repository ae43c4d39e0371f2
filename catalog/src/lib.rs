//! The cluster model shared by the exporter and the remediator.
//!
//! Data flows one way: catalog rows (per Greenplum version, see `queries`) become a
//! [`Snapshot`] (plain data, no SQL), and [`health`] derives the facts both services
//! reason about (double faults, unprotected contents, imbalance) exactly once.

pub mod health;
pub mod lsn;
pub mod snapshot;

pub use health::Health;
pub use lsn::Lsn;
pub use snapshot::*;
