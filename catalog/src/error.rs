//! Errors of the catalog crate. Each names what was attempted and, where there is one, the
//! endpoint it was attempted on.

use std::path::PathBuf;

use crate::queries::RowError;
use crate::version::VersionError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("invalid endpoint {text:?}: {why}")]
    InvalidEndpoint { text: String, why: &'static str },
    #[error("no coordinator endpoint is configured")]
    NoEndpoints,
    #[error("no endpoint answers as coordinator: {0}")]
    NoCoordinator(String),
    #[error("{endpoint}: {what} failed: {source}")]
    Query {
        endpoint: String,
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{endpoint}: {what} answered unexpectedly: {source}")]
    Row {
        endpoint: String,
        what: &'static str,
        #[source]
        source: RowError,
    },
    #[error("{endpoint}: {source}")]
    Version {
        endpoint: String,
        #[source]
        source: VersionError,
    },
    #[error("environment variable {name}: {why}")]
    Environment { name: &'static str, why: String },
    #[error("password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
}
