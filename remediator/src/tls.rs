//! TLS for the listener, and mTLS when a client CA is given: then every connection must
//! present a certificate that chains to that CA, so a request that reaches a handler came
//! from a verified client (the `Authenticator`'s client-certificate method).
//!
//! rustls with the `ring` provider: no OpenSSL to keep patched on the coordinator hosts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path} holds no usable PEM data: {detail}")]
    Pem {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("client CA file {path}: {detail}")]
    ClientCa { path: String, detail: String },
    #[error("CA file {path}: {detail}")]
    Ca { path: String, detail: String },
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

/// The files given on the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let pem_error = |detail: String| TlsError::Pem {
        what,
        path: path.display().to_string(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "TLS key file")?;
    // The error text never includes key material.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what: "TLS key file",
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Builds the listener's configuration: the server certificate chain and key, and with a
/// client CA, client certificates required and verified.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path, "client CA file")? {
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(
        certificates(&files.cert, "TLS certificate file")?,
        private_key(&files.key)?,
    )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The CLI's configuration: the server is verified against `ca` (PEM) or, without it, the
/// web's public roots; with `identity` (certificate chain, key) it presents a client
/// certificate for mTLS.
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path, "CA file")? {
                roots.add(cert).map_err(|e| TlsError::Ca {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            certificates(cert, "TLS certificate file")?,
            private_key(key)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let files = TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: empty.clone(),
            client_ca: None,
        };
        let e = server_config(&files).expect_err("missing cert");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let files = TlsFiles {
            cert: empty.clone(),
            key: empty,
            client_ca: None,
        };
        let e = server_config(&files).expect_err("empty cert");
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
    }
}
