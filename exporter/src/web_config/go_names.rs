//! exporter-toolkit's TLS tuning keys name Go's `crypto/tls` constants (`TLS12`,
//! `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, `CurveP256`); here they become rustls settings.
//!
//! A name rustls does not implement is refused with the list of those it does, rather than
//! skipped: a hardening list that silently meant something else would be worse than an
//! exporter that does not start.

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, NamedGroup, ProtocolVersion, SupportedProtocolVersion};
use serde::Deserialize;

/// `min_version` and `max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl TlsVersion {
    /// exporter-toolkit's defaults.
    pub fn default_min() -> Self {
        TlsVersion::TLS12
    }

    pub fn default_max() -> Self {
        TlsVersion::TLS13
    }
}

/// The versions between `min` and `max` that rustls speaks (1.2 and 1.3 only).
pub fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    if min > max {
        return Err(format!("min_version {min:?} is above max_version {max:?}"));
    }
    let versions: Vec<_> = [
        (TlsVersion::TLS12, &rustls::version::TLS12),
        (TlsVersion::TLS13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, rustls_version)| rustls_version)
    .collect();
    if versions.is_empty() {
        return Err(format!(
            "min_version {min:?} to max_version {max:?} leaves nothing this exporter speaks (TLS12 and TLS13 only)"
        ));
    }
    Ok(versions)
}

/// Go's names of the TLS 1.2 suites rustls implements (with Go's older ChaCha aliases).
const SUITES: [(&str, CipherSuite); 8] = [
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Go's curve names rustls' ring provider implements.
const CURVES: [(&str, NamedGroup); 3] = [
    ("X25519", NamedGroup::X25519),
    ("CurveP256", NamedGroup::secp256r1),
    ("CurveP384", NamedGroup::secp384r1),
];

fn lookup<T: Copy>(table: &[(&str, T)], key: &str, name: &str) -> Result<T, String> {
    table
        .iter()
        .find(|(go, _)| *go == name)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let known: Vec<&str> = table.iter().map(|(go, _)| *go).collect();
            format!(
                "{key}: {name:?} is not one this exporter offers (it offers {})",
                known.join(", ")
            )
        })
}

/// The TLS 1.2 suites named by `cipher_suites`, in their order.
pub fn cipher_suites(names: &[String]) -> Result<Vec<CipherSuite>, String> {
    names
        .iter()
        .map(|name| lookup(&SUITES, "cipher_suites", name))
        .collect()
}

/// The key-exchange groups named by `curve_preferences`, in their order.
pub fn curves(names: &[String]) -> Result<Vec<NamedGroup>, String> {
    names
        .iter()
        .map(|name| lookup(&CURVES, "curve_preferences", name))
        .collect()
}

/// rustls' ring provider narrowed to `suites` (TLS 1.2; Go never lets TLS 1.3 suites be
/// chosen, and neither does this) and to `groups`, each in the order given, which is the
/// server's preference. Empty lists keep the defaults.
pub fn provider(suites: &[CipherSuite], groups: &[NamedGroup]) -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        let rank = |suite: CipherSuite| suites.iter().position(|s| *s == suite);
        provider.cipher_suites.retain(|s| {
            s.version().version == ProtocolVersion::TLSv1_3 || rank(s.suite()).is_some()
        });
        // TLS 1.3 suites first, in rustls' order, then the list's.
        provider
            .cipher_suites
            .sort_by_key(|s| rank(s.suite()).map_or(0, |r| r + 1));
    }
    if !groups.is_empty() {
        let available = std::mem::take(&mut provider.kx_groups);
        provider.kx_groups = groups
            .iter()
            .filter_map(|g| available.iter().find(|k| k.name() == *g).copied())
            .collect();
    }
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_min_and_max_within_what_rustls_speaks() {
        let both = protocol_versions(TlsVersion::TLS10, TlsVersion::TLS13).expect("1.2 and 1.3");
        assert_eq!(both.len(), 2);
        let only13 = protocol_versions(TlsVersion::TLS13, TlsVersion::TLS13).expect("1.3");
        assert_eq!(only13[0].version, ProtocolVersion::TLSv1_3);
        assert_eq!(only13.len(), 1);
        let err = protocol_versions(TlsVersion::TLS10, TlsVersion::TLS11).expect_err("none");
        assert!(err.contains("TLS12 and TLS13 only"), "{err}");
        let err = protocol_versions(TlsVersion::TLS13, TlsVersion::TLS12).expect_err("reversed");
        assert!(err.contains("above"), "{err}");
    }

    #[test]
    fn go_names_map_and_unknown_ones_are_refused_with_the_known_ones() {
        let names = vec![
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string(),
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".to_string(),
        ];
        assert_eq!(
            cipher_suites(&names).expect("known"),
            vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            ]
        );
        let err = cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".to_string()]).expect_err("cbc");
        assert!(err.contains("TLS_RSA_WITH_AES_128_CBC_SHA"), "{err}");
        assert!(
            err.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "{err}"
        );
        let err = curves(&["CurveP521".to_string()]).expect_err("p521");
        assert!(err.contains("CurveP521") && err.contains("X25519"), "{err}");
    }

    #[test]
    fn the_provider_keeps_tls13_and_the_listed_suites_in_order() {
        let p = provider(
            &[
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ],
            &[NamedGroup::secp384r1],
        );
        let tls12: Vec<CipherSuite> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version().version == ProtocolVersion::TLSv1_2)
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls12,
            vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        assert!(p
            .cipher_suites
            .iter()
            .any(|s| s.version().version == ProtocolVersion::TLSv1_3));
        let groups: Vec<NamedGroup> = p.kx_groups.iter().map(|k| k.name()).collect();
        assert_eq!(groups, vec![NamedGroup::secp384r1]);
        let defaults = provider(&[], &[]);
        assert_eq!(
            defaults.cipher_suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }
}
