//! Request authentication: bearer token, basic auth, or a verified client certificate for
//! the webhook (Alertmanager), and named operator tokens for the API's decisions.
//!
//! Secrets are compared in constant time on their SHA-256 digests, so neither the content
//! nor the length of a secret leaks through timing.

mod operators;

use std::path::Path;

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use serde_json::json;
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
    #[error(transparent)]
    Operators(#[from] OperatorsFileError),
}

pub use operators::{Operators, OperatorsFileError};

/// What a request proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed,
    /// No usable credentials: 401.
    Missing,
    /// Credentials given but wrong: 403.
    Denied,
}

/// The answer to a request that did not prove enough: 401 or 403 with a JSON error, as the
/// webhook and the API both send it; `None` when it may go on.
pub fn auth_failure(outcome: AuthOutcome) -> Option<(StatusCode, serde_json::Value)> {
    match outcome {
        AuthOutcome::Allowed => None,
        AuthOutcome::Missing => Some((
            StatusCode::UNAUTHORIZED,
            json!({"error": "authentication required"}),
        )),
        AuthOutcome::Denied => Some((
            StatusCode::FORBIDDEN,
            json!({"error": "credentials refused"}),
        )),
    }
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
    /// Named operators (`--auth.operators-file`): only they may decide, and their name is
    /// taken from the token, never from the request.
    operators: Option<Operators>,
    /// Whether a verified client certificate whose subject CN is an operator's name
    /// identifies that operator without a token (`--auth.operator-client-cert`).
    operator_certs: bool,
}

/// Who may make a decision (approve, reject, pause, resume, reset the breaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    /// An operator proven by their own token; the name comes from the operators file.
    Operator(String),
    /// No operators file: the webhook's credentials decide and the client names itself.
    ClaimedByClient,
}

/// Why a decision was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeciderRefusal {
    /// No credentials at all: 401.
    Missing,
    /// The webhook's (Alertmanager's) credentials: they may deliver alerts and read, not
    /// decide: 403.
    WebhookCredential,
    /// Credentials that match nothing: 403.
    Denied,
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

    pub fn with_operators(mut self, operators: Operators) -> Self {
        self.operators = Some(operators);
        self
    }

    /// Operators may also be named by their verified client certificate's subject CN.
    pub fn with_operator_client_certs(mut self) -> Self {
        self.operator_certs = true;
        self
    }

    /// True when at least one webhook method is configured.
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.basic.is_some() || self.mtls
    }

    /// True when decisions need an operator's own token.
    pub fn operators_enabled(&self) -> bool {
        self.operators.is_some()
    }

    /// The operator the request proves: by token, or else (when enabled) by the subject CN
    /// of its verified client certificate. A token names its operator even on a connection
    /// whose certificate names another: the token is the more specific credential.
    fn operator(&self, headers: &HeaderMap, cert_name: Option<&str>) -> Option<&str> {
        let operators = self.operators.as_ref()?;
        if let Some(token) = bearer(headers) {
            return operators.find(token.as_bytes());
        }
        if self.mtls && self.operator_certs {
            return operators.named(cert_name?);
        }
        None
    }

    /// Reads (listing and showing actions): the webhook's credentials or an operator's.
    /// `cert_name` is the subject CN of the connection's verified client certificate.
    pub fn check_read(
        &self,
        headers: &HeaderMap,
        verified_client_cert: bool,
        cert_name: Option<&str>,
    ) -> AuthOutcome {
        if self.operator(headers, cert_name).is_some() {
            return AuthOutcome::Allowed;
        }
        self.check(headers, verified_client_cert)
    }

    /// Decisions: with an operators file, only an operator's token, which names them; without
    /// one, the webhook's credentials, and the client names itself.
    pub fn check_decider(
        &self,
        headers: &HeaderMap,
        verified_client_cert: bool,
        cert_name: Option<&str>,
    ) -> Result<Decider, DeciderRefusal> {
        if self.operators.is_none() {
            return match self.check(headers, verified_client_cert) {
                AuthOutcome::Allowed => Ok(Decider::ClaimedByClient),
                AuthOutcome::Missing => Err(DeciderRefusal::Missing),
                AuthOutcome::Denied => Err(DeciderRefusal::Denied),
            };
        }
        if let Some(name) = self.operator(headers, cert_name) {
            return Ok(Decider::Operator(name.to_string()));
        }
        if !headers.contains_key(header::AUTHORIZATION) {
            return Err(DeciderRefusal::Missing);
        }
        // Only a request that really carries the webhook's credentials is told so; with no
        // webhook authentication configured every request would "match" it.
        if self.is_configured() && self.check(headers, verified_client_cert) == AuthOutcome::Allowed
        {
            return Err(DeciderRefusal::WebhookCredential);
        }
        Err(DeciderRefusal::Denied)
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

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
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
    fn decisions_need_an_operator_token_once_operators_exist() {
        const ALICE: &str = "alice-token-0123456789";
        let operators = Operators::parse(&format!("alice {ALICE}\n"), "ops").expect("parse");
        let legacy = Authenticator::default().with_token(b"example-token");
        assert_eq!(
            legacy.check_decider(&headers("Bearer example-token"), false, None),
            Ok(Decider::ClaimedByClient)
        );
        let auth = legacy.with_operators(operators.clone());
        assert_eq!(
            auth.check_decider(&headers(&format!("Bearer {ALICE}")), false, None),
            Ok(Decider::Operator("alice".into()))
        );
        assert_eq!(
            auth.check_decider(&headers("Bearer example-token"), false, None),
            Err(DeciderRefusal::WebhookCredential)
        );
        assert_eq!(
            auth.check_decider(&headers("Bearer unknown-token-000000"), false, None),
            Err(DeciderRefusal::Denied)
        );
        assert_eq!(
            auth.check_decider(&HeaderMap::new(), false, None),
            Err(DeciderRefusal::Missing)
        );
        // The webhook token does not deliver as an operator, an operator token not as webhook.
        assert_eq!(
            auth.check(&headers(&format!("Bearer {ALICE}")), false),
            AuthOutcome::Denied
        );
        assert_eq!(
            auth.check_read(&headers(&format!("Bearer {ALICE}")), false, None),
            AuthOutcome::Allowed
        );
        // mTLS authenticates Alertmanager's connection, not an operator: a verified
        // connection still needs an operator's token to decide.
        let mtls = Authenticator::default()
            .with_mtls()
            .with_operators(operators);
        assert_eq!(
            mtls.check_decider(&HeaderMap::new(), true, None),
            Err(DeciderRefusal::Missing)
        );
        assert_eq!(
            mtls.check_decider(&headers("Bearer example-token"), true, None),
            Err(DeciderRefusal::WebhookCredential)
        );
        assert_eq!(
            mtls.check_decider(&headers(&format!("Bearer {ALICE}")), true, None),
            Ok(Decider::Operator("alice".into()))
        );
    }

    #[test]
    fn a_client_certificate_names_an_operator_only_when_enabled() {
        const ALICE: &str = "alice-token-0123456789";
        let operators = Operators::parse(&format!("alice {ALICE}\n"), "ops").expect("parse");
        let off = Authenticator::default()
            .with_mtls()
            .with_operators(operators.clone());
        assert_eq!(
            off.check_decider(&HeaderMap::new(), true, Some("alice")),
            Err(DeciderRefusal::Missing)
        );
        let on = off.with_operator_client_certs();
        assert_eq!(
            on.check_decider(&HeaderMap::new(), true, Some("alice")),
            Ok(Decider::Operator("alice".into()))
        );
        assert_eq!(
            on.check_decider(&HeaderMap::new(), true, Some("alertmanager")),
            Err(DeciderRefusal::Missing)
        );
        // A token is the more specific credential: a wrong one is not rescued by the cert.
        assert_eq!(
            on.check_decider(&headers("Bearer unknown-token-000000"), true, Some("alice")),
            Err(DeciderRefusal::WebhookCredential)
        );
        // Without mTLS there is no verified certificate, whatever a name claims.
        let plain = Authenticator::default()
            .with_token(b"example-token")
            .with_operators(operators)
            .with_operator_client_certs();
        assert_eq!(
            plain.check_decider(&HeaderMap::new(), false, Some("alice")),
            Err(DeciderRefusal::Missing)
        );
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
