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
//! - [`queries`]: SQL per dialect and pure row mappings, one module per source.

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
pub mod tls;
pub mod version;

pub use connection::{parse_duration, ClusterConnection, ConnectionDefaults, TlsFiles};
pub use error::CatalogError;
pub use health::{ClusterState, Health};
pub use lsn::Lsn;
pub use reader::{ClusterReader, Endpoint, ReaderConfig, TlsConfig};
pub use snapshot::*;
pub use version::{parse_version, VersionError};
