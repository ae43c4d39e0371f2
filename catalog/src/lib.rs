//! The cluster model shared by the exporter and the remediator.
//!
//! Data flows one way: catalog rows (per Greenplum version, see [`queries`]) become a
//! [`Snapshot`] (plain data, no SQL), and [`health`] derives the facts both services
//! reason about (double faults, unprotected contents, imbalance) exactly once.
//!
//! - [`reader::ClusterReader`]: the one entry point; one round = one [`Snapshot`].
//! - [`connection`]: the connection keys both services' files share, and the duration syntax.
//! - [`version`]: `version()` -> product, PostgreSQL base, SQL [`Dialect`].
//! - [`endpoint`]: probing and classifying a coordinator endpoint.
//! - [`queries`]: every statement; one module per source (SQL per dialect, pure row
//!   mapping, recorded-row tests) behind the [`queries::SourceQuery`] contract.
//! - `test_support` (cargo feature `test-support`): the snapshot builders every crate's
//!   tests share, and the parser of recorded `psql` tables.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod connection;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod lsn;
pub mod pgpass;
pub mod queries;
pub mod reader;
pub mod snapshot;
pub mod source;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod tls;
pub mod version;
pub mod yaml;

pub use connection::{parse_duration, ClusterConnection, ConnectionDefaults, TlsFiles};
pub use error::CatalogError;
pub use health::{ClusterState, Health};
pub use lsn::Lsn;
pub use reader::{ClusterReader, Endpoint, ReaderConfig, TlsConfig};
pub use snapshot::*;
pub use source::{Source, SourceError, Sourced};
pub use version::{parse_version, VersionError};
