//! `--web.config.file` in the format of Prometheus' exporter-toolkit, so users reuse the
//! files they already have:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: ca.crt                          # optional
//! basic_auth_users:
//!   prometheus: $2y$10$...                          # bcrypt hash
//! ```
//!
//! Unknown keys are refused (exporter-toolkit parses strictly too): a misspelt key that
//! silently disabled TLS or authentication would be worse than an exporter that does not
//! start. Relative paths are relative to the file, as in exporter-toolkit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid web config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("invalid web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("web config {path}: cannot load {what} from {file}: {message}")]
    Tls {
        path: PathBuf,
        what: &'static str,
        file: PathBuf,
        message: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// exporter-toolkit's names, taken from Go's `tls.ClientAuthType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuthType {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = WebConfig::parse(&text, path)?;
        if let (Some(tls), Some(dir)) = (&mut config.tls_server_config, path.parent()) {
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
            tls.client_ca_file = tls.client_ca_file.as_ref().map(|ca| dir.join(ca));
        }
        Ok(config)
    }

    /// Parses and checks a config; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        // An empty file is a valid, empty config (exporter-toolkit accepts it too).
        let config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|source| WebConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?
        };
        let invalid = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for (user, hash) in &config.basic_auth_users {
            // Refuse a plain-text password pasted where a hash belongs, at startup.
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(invalid(format!(
                    "basic_auth_users.{user} is not a bcrypt hash (generate one with htpasswd -nBC 10 \"\" | tr -d ':\\n')"
                )));
            }
        }
        if let Some(tls) = &config.tls_server_config {
            let needs_ca = matches!(
                tls.client_auth_type,
                ClientAuthType::VerifyClientCertIfGiven
                    | ClientAuthType::RequireAndVerifyClientCert
            );
            if needs_ca && tls.client_ca_file.is_none() {
                return Err(invalid(format!(
                    "client_auth_type {:?} needs client_ca_file",
                    tls.client_auth_type
                )));
            }
            if matches!(
                tls.client_auth_type,
                ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert
            ) {
                return Err(invalid(format!(
                    "client_auth_type {:?} (accepting unverified client certificates) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                    tls.client_auth_type
                )));
            }
        }
        Ok(config)
    }

    pub fn basic_auth(&self) -> Option<BasicAuth> {
        (!self.basic_auth_users.is_empty()).then(|| BasicAuth {
            users: self.basic_auth_users.clone(),
        })
    }

    /// The rustls server configuration, when TLS is configured.
    pub fn rustls(&self, path: &Path) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
        let Some(tls) = &self.tls_server_config else {
            return Ok(None);
        };
        let fail = |what, file: &Path, message: String| WebConfigError::Tls {
            path: path.to_path_buf(),
            what,
            file: file.to_path_buf(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(&tls.cert_file)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| fail("certificate", &tls.cert_file, e.to_string()))?;
        if certs.is_empty() {
            return Err(fail(
                "certificate",
                &tls.cert_file,
                "no certificate in the file".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&tls.key_file)
            .map_err(|e| fail("private key", &tls.key_file, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| fail("protocol versions", &tls.cert_file, e.to_string()))?;
        let builder = match (&tls.client_ca_file, tls.client_auth_type) {
            (Some(ca_file), auth) if auth != ClientAuthType::NoClientCert => {
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca_file)
                    .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| fail("client CA", ca_file, e.to_string()))?;
                for ca in cas {
                    roots
                        .add(ca)
                        .map_err(|e| fail("client CA", ca_file, e.to_string()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuthType::VerifyClientCertIfGiven {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| fail("client CA", ca_file, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| fail("certificate and key", &tls.cert_file, e.to_string()))?;
        // HTTP/1.1 only: see http::serve (the header deadline must cover every connection).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

/// Users and their bcrypt hashes.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
}

/// A valid hash of a password nobody knows: unknown users cost a bcrypt run too, so response
/// times do not tell which user names exist.
const DUMMY_HASH: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

impl BasicAuth {
    /// Checks an `Authorization` header value. bcrypt is slow on purpose: call this off the
    /// async runtime (`spawn_blocking`).
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(decode_basic) else {
            return false;
        };
        match self.users.get(&user) {
            Some(hash) => bcrypt::verify(&password, hash).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&password, DUMMY_HASH);
                false
            }
        }
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn header(user: &str, password: &str) -> String {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}")
    }

    fn config(text: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::parse(text, Path::new("web.yml"))
    }

    #[test]
    fn bcrypt_users_are_checked() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = config(&format!("basic_auth_users:\n  prometheus: '{hash}'\n"))
            .unwrap()
            .basic_auth()
            .unwrap();
        assert!(auth.check(Some(&header("prometheus", "s3cret"))));
        assert!(!auth.check(Some(&header("prometheus", "wrong"))));
        assert!(!auth.check(Some(&header("nobody", "s3cret"))));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(Some("Basic !!!not-base64")));
        assert!(!auth.check(None));
    }

    #[test]
    fn exporter_toolkit_file_parses() {
        let text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\nbasic_auth_users:\n  alice: $2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\n";
        let parsed = config(text).unwrap();
        let tls = parsed.tls_server_config.unwrap();
        assert_eq!(
            tls.client_auth_type,
            ClientAuthType::RequireAndVerifyClientCert
        );
        assert_eq!(tls.client_ca_file, Some(PathBuf::from("ca.crt")));
        assert_eq!(parsed.basic_auth_users.len(), 1);
        assert!(config("").unwrap().basic_auth().is_none());
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let plain = config("basic_auth_users:\n  alice: hunter2\n").unwrap_err();
        assert!(plain.to_string().contains("not a bcrypt hash"), "{plain}");
        let typo = config("basic_auth_user:\n  alice: x\n").unwrap_err();
        assert!(typo.to_string().contains("basic_auth_user"), "{typo}");
        let no_ca = config(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
        )
        .unwrap_err();
        assert!(no_ca.to_string().contains("client_ca_file"), "{no_ca}");
        let bad_type = config(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
        )
        .unwrap_err();
        assert!(bad_type.to_string().contains("Maybe"), "{bad_type}");
    }

    #[test]
    fn missing_certificate_files_are_named() {
        let parsed = config("tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: /nonexistent/server.key\n").unwrap();
        let err = parsed.rustls(Path::new("web.yml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/server.crt"), "{err}");
    }
}
