//! Request authentication: bearer token, basic auth, or a verified client certificate.
//!
//! Secrets are compared in constant time on their SHA-256 digests, so neither the content
//! nor the length of a secret leaks through timing.

use std::path::Path;

use axum::http::{header, HeaderMap};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    Empty(String),
}

/// What a request proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed,
    /// No usable credentials: 401.
    Missing,
    /// Credentials given but wrong: 403.
    Denied,
}

#[derive(Clone)]
struct Secret([u8; 32]);

impl Secret {
    fn new(value: &[u8]) -> Self {
        Secret(Sha256::digest(value).into())
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate).into();
        self.0.ct_eq(&digest).into()
    }
}

/// The configured methods. Any one that succeeds is enough.
#[derive(Clone, Default)]
pub struct Authenticator {
    token: Option<Secret>,
    basic: Option<(Secret, Secret)>,
    /// Client certificates are verified by the TLS layer; a request that arrives on a
    /// verified mTLS connection is authenticated.
    mtls: bool,
}

/// Reads a secret file, dropping the trailing newline editors and `echo` add.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    let text = std::fs::read(path).map_err(|source| AuthConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let trimmed = text.trim_ascii_end().to_vec();
    if trimmed.is_empty() {
        return Err(AuthConfigError::Empty(path.display().to_string()));
    }
    Ok(trimmed)
}

impl Authenticator {
    pub fn with_token(mut self, token: &[u8]) -> Self {
        self.token = Some(Secret::new(token));
        self
    }

    pub fn with_basic(mut self, user: &[u8], password: &[u8]) -> Self {
        self.basic = Some((Secret::new(user), Secret::new(password)));
        self
    }

    pub fn with_mtls(mut self) -> Self {
        self.mtls = true;
        self
    }

    /// True when at least one method is configured.
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.basic.is_some() || self.mtls
    }

    pub fn check(&self, headers: &HeaderMap, verified_client_cert: bool) -> AuthOutcome {
        if !self.is_configured() || (self.mtls && verified_client_cert) {
            return AuthOutcome::Allowed;
        }
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return AuthOutcome::Missing;
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return match &self.token {
                Some(token) if token.matches(rest.as_bytes()) => AuthOutcome::Allowed,
                Some(_) => AuthOutcome::Denied,
                None => AuthOutcome::Missing,
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = &self.basic else {
                return AuthOutcome::Missing;
            };
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else {
                return AuthOutcome::Denied;
            };
            let Some(colon) = decoded.iter().position(|b| *b == b':') else {
                return AuthOutcome::Denied;
            };
            // Evaluate both so a wrong user name costs the same time as a wrong password.
            let user_ok = user.matches(&decoded[..colon]);
            let password_ok = password.matches(&decoded[colon + 1..]);
            return if user_ok & password_ok {
                AuthOutcome::Allowed
            } else {
                AuthOutcome::Denied
            };
        }
        AuthOutcome::Missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("header"),
        );
        h
    }

    #[test]
    fn bearer_token() {
        let auth = Authenticator::default().with_token(b"example-token");
        assert_eq!(
            auth.check(&headers("Bearer example-token"), false),
            AuthOutcome::Allowed
        );
        assert_eq!(
            auth.check(&headers("Bearer example-tokem"), false),
            AuthOutcome::Denied
        );
        assert_eq!(
            auth.check(&headers("Bearer example-token-longer"), false),
            AuthOutcome::Denied
        );
        assert_eq!(auth.check(&HeaderMap::new(), false), AuthOutcome::Missing);
        assert_eq!(
            auth.check(&headers("Digest x"), false),
            AuthOutcome::Missing
        );
        // A client certificate means nothing when mTLS is not configured.
        assert_eq!(auth.check(&HeaderMap::new(), true), AuthOutcome::Missing);
    }

    #[test]
    fn basic_auth() {
        let auth = Authenticator::default().with_basic(b"am", b"s3cret");
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            auth.check(&headers(&format!("Basic {}", encode("am:s3cret"))), false),
            AuthOutcome::Allowed
        );
        assert_eq!(
            auth.check(&headers(&format!("Basic {}", encode("am:wrong"))), false),
            AuthOutcome::Denied
        );
        assert_eq!(
            auth.check(&headers(&format!("Basic {}", encode("amnocolon"))), false),
            AuthOutcome::Denied
        );
        assert_eq!(
            auth.check(&headers("Basic !!!"), false),
            AuthOutcome::Denied
        );
        assert_eq!(
            auth.check(&headers("Bearer s3cret"), false),
            AuthOutcome::Missing
        );
    }

    #[test]
    fn mtls_accepts_verified_connections_only() {
        let auth = Authenticator::default().with_mtls();
        assert_eq!(auth.check(&HeaderMap::new(), true), AuthOutcome::Allowed);
        assert_eq!(auth.check(&HeaderMap::new(), false), AuthOutcome::Missing);
    }

    #[test]
    fn secret_files_are_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "example-token\n").expect("write");
        assert_eq!(read_secret(&path).expect("read"), b"example-token");
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(read_secret(&path), Err(AuthConfigError::Empty(_))));
        assert!(read_secret(&dir.path().join("missing")).is_err());
    }
}
