//! Errors of the catalog crate. Each names what was attempted and, where there is one, the
//! endpoint it was attempted on.

use std::path::PathBuf;

use crate::queries::RowError;
use crate::version::VersionError;

/// Why the catalog could not be reached or read. Inside a snapshot it becomes a source's
/// [`SourceError`](crate::SourceError) text; from [`ClusterReader::request_fts_probe`] and
/// the configuration it is returned as is.
///
/// [`ClusterReader::request_fts_probe`]: crate::ClusterReader::request_fts_probe
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A configured endpoint is not `host:port` (or carries credentials).
    #[error("invalid endpoint {text:?}: {why}")]
    InvalidEndpoint {
        /// The text as given (at most 200 characters; credentials cut off).
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The configuration names no coordinator endpoint at all.
    #[error("no coordinator endpoint is configured")]
    NoEndpoints,
    /// No endpoint accepts logins outside recovery (coordinator down, failover under way, or
    /// the held connection was lost or timed out); holds what each endpoint answered.
    #[error("no endpoint answers as coordinator: {0}")]
    NoCoordinator(String),
    /// A statement failed on the coordinator (dispatch error, statement timeout,
    /// permission...). `message` is the server's own text (severity, SQLSTATE, message,
    /// detail): the driver's `Display` alone says only "db error".
    #[error("{endpoint}: {what} failed: {message}")]
    Query {
        /// The coordinator endpoint the statement ran on.
        endpoint: String,
        /// What was read (`gp_stat_replication`, `version()`...).
        what: &'static str,
        /// The server's full error text.
        message: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement answered with rows this code cannot map (a catalog change, a hidden
    /// walsender).
    #[error("{endpoint}: {what} answered unexpectedly: {source}")]
    Row {
        /// The coordinator endpoint the statement ran on.
        endpoint: String,
        /// What was read.
        what: &'static str,
        /// Which row and column held what.
        #[source]
        source: RowError,
    },
    /// `version()` answered something no catalog dialect is known for.
    #[error("{endpoint}: {source}")]
    Version {
        /// The coordinator endpoint that answered.
        endpoint: String,
        /// Why the answer was not understood.
        #[source]
        source: VersionError,
    },
    /// A libpq environment variable (`PGHOST`, `PGPORT`...) holds an unusable value.
    #[error("environment variable {name}: {why}")]
    Environment {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// The password file could not be read.
    #[error("password file {path}: {source}")]
    PasswordFile {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files (CA, client certificate, key) could not be loaded.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl CatalogError {
    pub(crate) fn query(
        endpoint: String,
        what: &'static str,
        source: tokio_postgres::Error,
    ) -> Self {
        CatalogError::Query {
            endpoint,
            what,
            message: describe(&source),
            source,
        }
    }
}

/// The full text of a driver error: the server's fields for a database error, otherwise the
/// error and its causes.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (DETAIL: {detail})"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}
