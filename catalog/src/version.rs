//! `SELECT version()` -> [`Version`].
//!
//! The SQL dialect is chosen by the PostgreSQL base major version, never by the product name:
//! Greengage 6 and Greenplum 6 share a 9.4 base, Cloudberry and Greenplum 7 share the 12+ shape.

use crate::snapshot::{Dialect, Product, Version};

/// Why a `version()` string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The answer is not a PostgreSQL-family `version()` string (quoted, shortened).
    #[error("version() answered {0:?}, which does not start with \"PostgreSQL <version>\"")]
    NotPostgres(String),
    #[error("version() answered {text:?}: PostgreSQL base {base:?} is not a version number")]
    /// The PostgreSQL base after `PostgreSQL ` is not a number like `9.4.26`.
    BadBase {
        /// The answer, shortened.
        text: String,
        /// The word where the base version should be.
        base: String,
    },
    #[error(
        "version() answered {text:?}: PostgreSQL base {base} is older than 8.3 (Greenplum 5), \
         no catalog dialect is known for it"
    )]
    /// A base older than Greenplum 5's 8.3: no catalog dialect exists for it.
    Unsupported {
        /// The answer, shortened.
        text: String,
        /// The PostgreSQL base version.
        base: String,
    },
}

/// Longest excerpt of a bad `version()` string quoted in an error.
const QUOTE_LIMIT: usize = 120;

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Products recognised inside the parentheses after the PostgreSQL version, by the words that
/// precede the product version.
const PRODUCTS: &[(&str, Product)] = &[
    ("Greenplum Database", Product::Greenplum),
    ("Apache Cloudberry", Product::Cloudberry),
    ("Cloudberry Database", Product::Cloudberry),
    ("Greengage Database", Product::Greengage),
];

/// Parses the answer of `SELECT version()`.
///
/// A plain PostgreSQL (no known product in parentheses, e.g. a Debian build) parses as
/// [`Product::Unknown`] with the PostgreSQL version as product version, so a server that only
/// imitates the catalog (the lab) still gets a dialect.
pub fn parse_version(text: &str) -> Result<Version, VersionError> {
    let trimmed = text.trim();
    let rest = trimmed
        .strip_prefix("PostgreSQL ")
        .ok_or_else(|| VersionError::NotPostgres(excerpt(trimmed)))?;
    let base_end = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(rest.len());
    let pg_version = &rest[..base_end];
    let dialect = dialect_of(pg_version).map_err(|e| match e {
        BaseError::Malformed => VersionError::BadBase {
            text: excerpt(trimmed),
            base: excerpt(pg_version),
        },
        BaseError::TooOld => VersionError::Unsupported {
            text: excerpt(trimmed),
            base: pg_version.to_string(),
        },
    })?;
    let (product, product_version) =
        product_of(&rest[base_end..]).unwrap_or_else(|| (Product::Unknown, pg_version.to_string()));
    Ok(Version {
        product,
        product_version,
        pg_version: pg_version.to_string(),
        dialect,
    })
}

enum BaseError {
    Malformed,
    TooOld,
}

/// 8.x = GP5 style, 9.x = GP6 style, 10 and later = GP7 style (PostgreSQL 10 renamed the
/// `xlog` functions and `*_location` columns that the GP6 dialect uses).
fn dialect_of(pg_version: &str) -> Result<Dialect, BaseError> {
    // Pre-releases carry a suffix (`16beta1`, `17devel`): digits first, then letters/digits.
    let mut parts = pg_version.split('.');
    let first = parts.next().unwrap_or("");
    let digits = first.bytes().take_while(u8::is_ascii_digit).count();
    let suffix_ok = first[digits..].bytes().all(|b| b.is_ascii_alphanumeric());
    if digits == 0 || digits > 4 || !suffix_ok {
        return Err(BaseError::Malformed);
    }
    let major: u32 = first[..digits].parse().map_err(|_| BaseError::Malformed)?;
    for part in parts {
        if !part.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            return Err(BaseError::Malformed);
        }
    }
    match major {
        0..=7 => Err(BaseError::TooOld),
        8 => Ok(Dialect::Gp5),
        9 => Ok(Dialect::Gp6),
        _ => Ok(Dialect::Gp7),
    }
}

/// The product and its version from `" (Greenplum Database 6.24.3 build ...) on ..."`.
fn product_of(after_base: &str) -> Option<(Product, String)> {
    let inner = after_base.trim_start().strip_prefix('(')?;
    let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
    PRODUCTS.iter().find_map(|(name, product)| {
        let version = inner.strip_prefix(name)?.split_whitespace().next()?;
        Some((*product, version.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GP6: &str = "PostgreSQL 9.4.26 (Greenplum Database 6.24.3 build \
        commit:25d3498a400ca5230e81abb94861f23389315213) on x86_64-unknown-linux-gnu, compiled \
        by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit compiled on Nov 21 2026 16:00:24";

    fn parsed(text: &str) -> (Product, String, String, Dialect) {
        let v = parse_version(text).unwrap();
        (v.product, v.product_version, v.pg_version, v.dialect)
    }

    #[test]
    fn recorded_gp6_string() {
        assert_eq!(
            parsed(GP6),
            (
                Product::Greenplum,
                "6.24.3".into(),
                "9.4.26".into(),
                Dialect::Gp6
            )
        );
    }

    #[test]
    fn every_product_shape() {
        let cases = [
            (
                "PostgreSQL 8.3.23 (Greenplum Database 5.29.0 build commit:abc) on x86_64",
                Product::Greenplum,
                "5.29.0",
                "8.3.23",
                Dialect::Gp5,
            ),
            (
                "PostgreSQL 12.12 (Greenplum Database 7.1.0 build commit:e7c2b1f) on x86_64",
                Product::Greenplum,
                "7.1.0",
                "12.12",
                Dialect::Gp7,
            ),
            (
                "PostgreSQL 14.4 (Apache Cloudberry 2.0.0-incubating build 1) on x86_64-pc-linux-gnu",
                Product::Cloudberry,
                "2.0.0-incubating",
                "14.4",
                Dialect::Gp7,
            ),
            (
                "PostgreSQL 14.4 (Cloudberry Database 1.6.0 build 1) on x86_64",
                Product::Cloudberry,
                "1.6.0",
                "14.4",
                Dialect::Gp7,
            ),
            (
                "PostgreSQL 9.4.26 (Greengage Database 6.28.1 build dev) on x86_64",
                Product::Greengage,
                "6.28.1",
                "9.4.26",
                Dialect::Gp6,
            ),
            (
                "PostgreSQL 15.5 (Debian 15.5-1.pgdg120+1) on x86_64-pc-linux-gnu",
                Product::Unknown,
                "15.5",
                "15.5",
                Dialect::Gp7,
            ),
            (
                "PostgreSQL 16beta1 on x86_64",
                Product::Unknown,
                "16beta1",
                "16beta1",
                Dialect::Gp7,
            ),
        ];
        for (text, product, version, pg, dialect) in cases {
            assert_eq!(
                parsed(text),
                (product, version.to_string(), pg.to_string(), dialect),
                "{text}"
            );
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        assert!(matches!(
            parse_version(""),
            Err(VersionError::NotPostgres(_))
        ));
        assert!(matches!(
            parse_version("MySQL 8.0.36"),
            Err(VersionError::NotPostgres(_))
        ));
        assert!(matches!(
            parse_version("PostgreSQL x.y (Greenplum Database 6.1.0)"),
            Err(VersionError::BadBase { .. })
        ));
        assert!(matches!(
            parse_version("PostgreSQL 7.4.1"),
            Err(VersionError::Unsupported { .. })
        ));
        let message = parse_version("PostgreSQL 9..4").unwrap_err().to_string();
        assert!(message.contains("9..4"), "{message}");
    }

    #[test]
    fn long_garbage_is_quoted_briefly() {
        let text = "é".repeat(10_000);
        let message = parse_version(&text).unwrap_err().to_string();
        assert!(message.len() < 400, "{}", message.len());
    }

    proptest! {
        #[test]
        fn never_panics(text in ".*") {
            let _ = parse_version(&text);
        }

        #[test]
        fn never_panics_after_the_prefix(rest in ".*") {
            let _ = parse_version(&format!("PostgreSQL {rest}"));
        }

        #[test]
        fn greenplum_versions_round_trip(major in 8u32..20, minor in 0u32..30, gp in "[0-9]\\.[0-9]{1,2}\\.[0-9]") {
            let text = format!("PostgreSQL {major}.{minor} (Greenplum Database {gp} build x) on y");
            let v = parse_version(&text).unwrap();
            prop_assert_eq!(v.product, Product::Greenplum);
            prop_assert_eq!(v.product_version, gp);
            prop_assert_eq!(v.pg_version, format!("{major}.{minor}"));
        }
    }
}
