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
//! Also read: `min_version`/`max_version` (TLS12 and TLS13: rustls speaks no older version),
//! `cipher_suites` and `curve_preferences` in Go's names (see [`go_names`]),
//! `prefer_server_cipher_suites`, and `http_server_config` (`headers`, the five exporter-toolkit
//! allows; `http2` is accepted and has no effect: the exporter speaks HTTP/1.1 only, which keeps
//! the header-read deadline on every connection).
//!
//! Unknown keys are refused (exporter-toolkit parses strictly too): a misspelt key that
//! silently disabled TLS or authentication would be worse than an exporter that does not
//! start. So are the keys not implemented (inline `cert`/`key`/`client_ca`,
//! `client_allowed_sans`, `rate_limit`): ignoring an access restriction would open what the
//! file meant to close. Relative paths are relative to the file, as in exporter-toolkit.
//! Errors name their line (serde-saphyr, see [`crate::yaml`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod go_names;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use go_names::TlsVersion;

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
        source: greenplum_catalog::yaml::YamlError,
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
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for compatibility; HTTP/1.1 is served either way.
    #[serde(default = "yes")]
    pub http2: bool,
    /// Response headers, by exporter-toolkit's names; an empty value sets nothing.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// The response headers exporter-toolkit lets a file set, and the values it accepts (`None`:
/// any value).
const RESPONSE_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default = "TlsVersion::default_min")]
    pub min_version: TlsVersion,
    #[serde(default = "TlsVersion::default_max")]
    pub max_version: TlsVersion,
    /// TLS 1.2 suites in Go's names; empty keeps rustls' defaults.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default = "yes")]
    pub prefer_server_cipher_suites: bool,
    /// Key-exchange groups in Go's names; empty keeps rustls' defaults.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
}

impl TlsServerConfig {
    /// What the file asks for can be done, and safely.
    fn check(&self) -> Result<(), String> {
        let needs_ca = matches!(
            self.client_auth_type,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        );
        if needs_ca && self.client_ca_file.is_none() {
            return Err(format!(
                "client_auth_type {:?} needs client_ca_file",
                self.client_auth_type
            ));
        }
        if matches!(
            self.client_auth_type,
            ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert
        ) {
            return Err(format!(
                "client_auth_type {:?} (accepting unverified client certificates) is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                self.client_auth_type
            ));
        }
        go_names::protocol_versions(self.min_version, self.max_version)?;
        go_names::cipher_suites(&self.cipher_suites)?;
        go_names::curves(&self.curve_preferences)?;
        Ok(())
    }
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
            greenplum_catalog::yaml::from_str(text).map_err(|source| WebConfigError::Parse {
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
            tls.check().map_err(invalid)?;
        }
        config.response_headers().map_err(invalid)?;
        Ok(config)
    }

    /// The headers of `http_server_config.headers`, checked as exporter-toolkit checks them.
    pub fn response_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        let mut headers = Vec::new();
        for (name, value) in &self.http_server_config.headers {
            let Some((_, allowed)) = RESPONSE_HEADERS.iter().find(|(n, _)| n == name) else {
                let known: Vec<&str> = RESPONSE_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "http_server_config.headers: {name:?} cannot be set (allowed: {})",
                    known.join(", ")
                ));
            };
            if value.is_empty() {
                continue;
            }
            if let Some(allowed) = allowed {
                if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                    return Err(format!(
                        "http_server_config.headers.{name}: {value:?} is not one of {}",
                        allowed.join(", ")
                    ));
                }
            }
            let value = HeaderValue::from_str(value).map_err(|_| {
                format!("http_server_config.headers.{name}: {value:?} is not a valid header value")
            })?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("http_server_config.headers: {name:?}: {e}"))?;
            headers.push((name, value));
        }
        Ok(headers)
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
        // Checked by `parse`; a config built by hand gets the same reasons here.
        let tuning = |e: String| fail("TLS settings", path, e);
        let versions =
            go_names::protocol_versions(tls.min_version, tls.max_version).map_err(tuning)?;
        let provider = Arc::new(go_names::provider(
            &go_names::cipher_suites(&tls.cipher_suites).map_err(tuning)?,
            &go_names::curves(&tls.curve_preferences).map_err(tuning)?,
        ));
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| fail("protocol versions", path, e.to_string()))?;
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
        config.ignore_client_order = tls.prefer_server_cipher_suites;
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
    fn every_implemented_exporter_toolkit_key_parses() {
        let text = "\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS13
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519, CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: DENY
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
    Content-Security-Policy: ''
";
        let parsed = config(text).unwrap();
        let tls = parsed.tls_server_config.as_ref().unwrap();
        assert_eq!(tls.min_version, TlsVersion::TLS13);
        assert_eq!(tls.cipher_suites.len(), 2);
        assert!(!tls.prefer_server_cipher_suites);
        assert!(!parsed.http_server_config.http2);
        let headers: Vec<String> = parsed
            .response_headers()
            .unwrap()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        // The empty Content-Security-Policy sets nothing.
        assert_eq!(
            headers,
            vec![
                "strict-transport-security: max-age=31536000",
                "x-content-type-options: nosniff",
                "x-frame-options: DENY"
            ]
        );
        let defaults = config("tls_server_config:\n  cert_file: a\n  key_file: b\n").unwrap();
        let tls = defaults.tls_server_config.unwrap();
        assert_eq!(
            (tls.min_version, tls.max_version),
            (TlsVersion::TLS12, TlsVersion::TLS13)
        );
        assert!(tls.prefer_server_cipher_suites && defaults.http_server_config.http2);
    }

    #[test]
    fn tls_and_header_settings_that_cannot_be_honoured_are_refused() {
        let tls = |extra: &str| {
            config(&format!(
                "tls_server_config:\n  cert_file: a\n  key_file: b\n{extra}"
            ))
        };
        for (extra, reason) in [
            (
                "  min_version: TLS11\n  max_version: TLS11\n",
                "TLS12 and TLS13 only",
            ),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "above max_version",
            ),
            ("  min_version: TLS9\n", "TLS9"),
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "TLS_RSA_WITH_AES_128_CBC_SHA",
            ),
            ("  curve_preferences: [CurveP521]\n", "CurveP521"),
            (
                "  client_allowed_sans: [prometheus]\n",
                "client_allowed_sans",
            ),
            ("  cert: inline\n", "cert"),
        ] {
            let err = tls(extra).unwrap_err().to_string();
            assert!(err.contains(reason), "{extra}: {err}");
        }
        for (headers, reason) in [
            ("    X-Powered-By: me\n", "X-Powered-By"),
            ("    X-Frame-Options: allow\n", "deny, sameorigin"),
            ("    X-Content-Type-Options: sniff\n", "nosniff"),
            ("    X-XSS-Protection: \"1\\nX: y\"\n", "valid header value"),
        ] {
            let err = config(&format!("http_server_config:\n  headers:\n{headers}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{headers}: {err}");
        }
        let err = config("rate_limit:\n  interval: 1s\n  burst: 1\n").unwrap_err();
        assert!(err.to_string().contains("rate_limit"), "{err}");
    }

    #[test]
    fn missing_certificate_files_are_named() {
        let parsed = config("tls_server_config:\n  cert_file: /nonexistent/server.crt\n  key_file: /nonexistent/server.key\n").unwrap();
        let err = parsed.rustls(Path::new("web.yml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/server.crt"), "{err}");
    }
}
