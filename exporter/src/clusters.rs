//! `--config.file`: several clusters by name, each served on `/probe?target=NAME`.
//!
//! ```yaml
//! clusters:
//!   prod:
//!     endpoints: ["cdw.example.com:5432", "scdw.example.com:5432"]
//!     user: gpmon
//!     db: postgres
//!     password_file: /etc/greenplum-exporter/prod.password
//!     tls:
//!       ca_file: /etc/greenplum-exporter/prod-ca.crt
//!     statement_timeout: 10s     # optional, else --statement-timeout
//!     connect_timeout: 5s        # optional, else --connect-timeout
//! ```
//!
//! Relative paths are relative to the config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use greenplum_catalog::{Endpoint, ReaderConfig, TlsConfig};
use serde::Deserialize;

use crate::cli::{read_password_file, APPLICATION_NAME};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClustersFile {
    pub clusters: BTreeMap<String, ClusterConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub endpoints: Vec<String>,
    pub user: String,
    pub db: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: Option<ClusterTls>,
    #[serde(default, with = "humantime_serde_opt")]
    pub statement_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    pub ca_file: PathBuf,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Durations written like the flags (`10s`, `1m30s`).
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            humantime::parse_duration(&t)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {t:?}: {e}")))
        })
        .transpose()
    }
}

/// Defaults the flags give to every cluster of the file.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub statement_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ClustersFile {
    pub fn load(path: &Path) -> anyhow::Result<ClustersFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read cluster config {}", path.display()))?;
        ClustersFile::parse(&text)
            .with_context(|| format!("invalid cluster config {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<ClustersFile> {
        let file: ClustersFile = serde_yaml::from_str(text)?;
        if file.clusters.is_empty() {
            bail!("no clusters defined");
        }
        for (name, cluster) in &file.clusters {
            if !valid_name(name) {
                bail!("cluster name {name:?} may only hold letters, digits, '-', '_' and '.'");
            }
            if cluster.endpoints.is_empty() {
                bail!("cluster {name}: endpoints is empty");
            }
        }
        Ok(file)
    }

    /// One reader config per cluster; `base` resolves relative paths.
    pub fn reader_configs(
        &self,
        base: &Path,
        defaults: Defaults,
    ) -> anyhow::Result<BTreeMap<String, ReaderConfig>> {
        self.clusters
            .iter()
            .map(|(name, cluster)| {
                let config = cluster
                    .reader_config(base, defaults)
                    .with_context(|| format!("cluster {name}"))?;
                Ok((name.clone(), config))
            })
            .collect()
    }
}

impl ClusterConfig {
    fn reader_config(&self, base: &Path, defaults: Defaults) -> anyhow::Result<ReaderConfig> {
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| e.parse::<Endpoint>().map_err(anyhow::Error::from))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut config = ReaderConfig::new(endpoints, &self.user, &self.db);
        config.application_name = APPLICATION_NAME.to_string();
        if let Some(file) = &self.password_file {
            config.password = Some(read_password_file(&base.join(file))?);
        }
        if let Some(tls) = &self.tls {
            config.tls = Some(TlsConfig {
                ca_file: base.join(&tls.ca_file),
                client_cert: tls.cert_file.as_ref().map(|f| base.join(f)),
                client_key: tls.key_file.as_ref().map(|f| base.join(f)),
            });
        }
        if let Some(t) = self.statement_timeout.or(defaults.statement_timeout) {
            config.statement_timeout = t;
        }
        if let Some(t) = self.connect_timeout.or(defaults.connect_timeout) {
            config.connect_timeout = t;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        statement_timeout: Some(Duration::from_secs(7)),
        connect_timeout: None,
    };

    #[test]
    fn clusters_become_reader_configs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prod.password"), "pw\n").unwrap();
        let file = ClustersFile::parse(
            "clusters:\n  prod:\n    endpoints: ['cdw:5432', 'scdw:5432']\n    user: gpmon\n    db: postgres\n    password_file: prod.password\n    tls:\n      ca_file: ca.crt\n    connect_timeout: 2s\n  dr:\n    endpoints: ['[::1]:6000']\n    user: gpmon\n    db: postgres\n",
        )
        .unwrap();
        let configs = file.reader_configs(dir.path(), DEFAULTS).unwrap();
        let prod = &configs["prod"];
        assert_eq!(
            prod.endpoints,
            vec![Endpoint::new("cdw", 5432), Endpoint::new("scdw", 5432)]
        );
        assert_eq!(prod.password.as_deref(), Some("pw"));
        assert_eq!(
            prod.tls.as_ref().unwrap().ca_file,
            dir.path().join("ca.crt")
        );
        assert_eq!(prod.connect_timeout, Duration::from_secs(2));
        assert_eq!(prod.statement_timeout, Duration::from_secs(7));
        assert_eq!(configs["dr"].endpoints, vec![Endpoint::new("::1", 6000)]);
        assert_eq!(configs["dr"].password, None);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |text: &str| format!("{:#}", ClustersFile::parse(text).unwrap_err());
        assert!(err("clusters: {}\n").contains("no clusters"));
        assert!(
            err("clusters:\n  'a b':\n    endpoints: ['x:1']\n    user: u\n    db: d\n")
                .contains("may only hold")
        );
        assert!(
            err("clusters:\n  a:\n    endpoints: []\n    user: u\n    db: d\n")
                .contains("endpoints is empty")
        );
        assert!(err(
            "clusters:\n  a:\n    endpoints: ['x:1']\n    user: u\n    db: d\n    password: p\n"
        )
        .contains("password"));
        assert!(err("clusters:\n  a:\n    endpoints: ['x:1']\n    user: u\n    db: d\n    statement_timeout: soon\n").contains("soon"));
        let file = ClustersFile::parse(
            "clusters:\n  a:\n    endpoints: ['nope']\n    user: u\n    db: d\n",
        )
        .unwrap();
        let e = format!(
            "{:#}",
            file.reader_configs(Path::new("."), DEFAULTS).unwrap_err()
        );
        assert!(e.contains("cluster a") && e.contains("nope"), "{e}");
    }
}
