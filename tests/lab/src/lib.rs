//! # gplab: a Greenplum-shaped lab cluster on real PostgreSQL 15 servers
//!
//! A coordinator, a standby coordinator streaming from it, and N contents of a primary and a
//! mirror in synchronous streaming replication, on 127.0.0.1 with symbolic hosts (`cdw`,
//! `scdw`, `sdw1..`). The coordinator carries Greenplum's relations with the columns of the
//! chosen [`Flavor`]; an FTS daemon fails primaries over and marks mirrors down; stand-ins
//! for `gprecoverseg`, `gpinitstandby` and `gpactivatestandby` take the real command lines.
//!
//! ## Library API (what the exporter's and remediator's tests use)
//!
//! ```no_run
//! use std::time::Duration;
//! use gplab::{Flavor, Lab, LabConfig};
//!
//! # fn main() -> gplab::Result<()> {
//! // 3 contents, gp6, standby, FTS every second, mirror grace 3 s, free ports, temp dir.
//! let lab = Lab::up(LabConfig::for_tests(3, Flavor::Gp6))?;
//! let port = lab.coordinator_port();          // acting coordinator (follows activation)
//! let env = lab.env();                        // PATH, PGPORT, COORDINATOR_DATA_DIRECTORY, ...
//! lab.load(1000)?;
//! let before = lab.checksum()?;
//! lab.fail_primary(0)?;
//! lab.wait_for_catalog("failover", Duration::from_secs(30), |rows| {
//!     rows.iter().any(|r| r.content == 0 && r.role == 'p' && r.preferred_role == 'm')
//! })?;
//! let status = lab.command("gprecoverseg").arg("-a").status();   // the stand-in, via PATH
//! assert_eq!(lab.checksum()?, before);
//! # let _ = (port, env, status); Ok(()) }
//! // Dropping `lab` stops every server and the FTS daemon and deletes the temp dir.
//! ```
//!
//! - [`Lab::up`]`(LabConfig)`, [`Lab::up_at`]`(config, dir, owner_pid)`, [`Lab::open`]`(dir)`,
//!   [`Lab::catalog_only`]`(segments, flavor)` (one server, `segments` primaries + as many
//!   mirrors of synthetic rows).
//! - Where: [`Lab::dir`], [`Lab::coordinator_port`], [`Lab::coordinator_datadir`],
//!   [`Lab::standby_port`], [`Lab::standby_datadir`], [`Lab::bin_dir`], [`Lab::env`],
//!   [`Lab::command`], [`Lab::client`], [`Lab::segments`], [`Lab::query_catalog`].
//! - Faults: [`Lab::fail_primary`], [`Lab::fail_mirror`], [`Lab::fail_host`],
//!   [`Lab::fail_coordinator`], [`Lab::fail_standby`], [`Lab::lag`].
//! - Data: [`Lab::load`], [`Lab::checksum`].
//! - Waiting: [`Lab::wait_until`], [`Lab::wait_for_catalog`] (bounded guards).
//! - [`Lab::down`] (also run by `Drop`), [`Lab::detach`] (keep running).
//!
//! Every server runs as the `postgres` user when the caller is root. The `gplab` binary must
//! be built (cargo builds it for this crate's tests; other crates' tests find it next to
//! their own executable, via `GPLAB_BIN`, or build it with cargo).

pub mod catalog;
mod catalog_only;
pub mod catalog_sql;
pub mod config;
pub mod conn;
pub mod data;
mod error;
pub mod fts;
mod instance;
mod lab;
mod ports;
pub mod process;
mod provision;
pub mod state;
pub mod status;
pub mod tools;

pub use catalog::SegmentRow;
pub use config::{Flavor, LabConfig, MirrorLayout};
pub use data::Checksum;
pub use error::{Error, Result};
pub use lab::{stop_servers, Lab, TOOLS};
pub use state::{Instance, LabState};
