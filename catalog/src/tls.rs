//! TLS to the database with rustls: the server is verified against a CA file (and its host
//! name), optionally with a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::CatalogError;

/// Where the PEM files are. Setting this makes TLS mandatory (libpq's `verify-full`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificate(s) that sign the server's certificate.
    pub ca_file: PathBuf,
    /// Client certificate chain, for servers that authenticate clients by certificate.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (required with `client_cert`).
    pub client_key: Option<PathBuf>,
}

impl TlsConfig {
    /// TLS that verifies the server against `ca_file`, without a client certificate.
    pub fn with_ca(ca_file: impl Into<PathBuf>) -> Self {
        TlsConfig {
            ca_file: ca_file.into(),
            client_cert: None,
            client_key: None,
        }
    }

    /// Reads the files and builds the connector. Errors name the file.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, CatalogError> {
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(CatalogError::Tls(
                "a client certificate needs both a certificate and a key file".into(),
            ));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(&self.ca_file)? {
            roots
                .add(cert)
                .map_err(|e| tls_error(&self.ca_file, &e.to_string()))?;
        }
        // The provider is named explicitly: no dependence on a process-wide default.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CatalogError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_error(key, &format!("no private key read: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error(cert, &e.to_string()))?
            }
            // Neither (one without the other was refused above).
            _ => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CatalogError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, &e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, &e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn tls_error(path: &Path, why: &str) -> CatalogError {
    CatalogError::Tls(format!("{}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let error = TlsConfig::with_ca("/nonexistent/ca.pem")
            .connector()
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let error = TlsConfig::with_ca(empty.path())
            .connector()
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn a_certificate_without_a_key_is_refused() {
        let config = TlsConfig {
            client_cert: Some("/tmp/cert.pem".into()),
            ..TlsConfig::with_ca("/tmp/ca.pem")
        };
        let error = config.connector().err().unwrap().to_string();
        assert!(error.contains("needs both"), "{error}");
    }
}
