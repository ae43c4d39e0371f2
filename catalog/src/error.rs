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
    /// `message` is the server's own text (severity, SQLSTATE, message, detail): the
    /// driver's `Display` alone says only "db error".
    #[error("{endpoint}: {what} failed: {message}")]
    Query {
        endpoint: String,
        what: &'static str,
        message: String,
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
