//! `--config.file`: several clusters by name, each served on `/probe?target=NAME`.
//!
//! ```yaml
//! clusters:
//!   prod:
//!     endpoints: ["cdw.example.com:5432", "scdw.example.com:5432"]
//!     user: gpmon
//!     database: postgres
//!     password_file: /etc/greenplum-exporter/prod.password
//!     tls:
//!       ca_file: /etc/greenplum-exporter/prod-ca.crt
//!     statement_timeout: 10s     # optional, else --statement-timeout
//!     connect_timeout: 5s        # optional, else --connect-timeout
//! ```
//!
//! Each cluster holds exactly the connection keys of the remediator's policy clusters
//! ([`greenplum_catalog::ClusterConnection`], parsed by the same code: same defaults, same
//! errors). Relative paths are relative to the config file; errors name their line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use greenplum_catalog::{ClusterConnection, ConnectionDefaults, ReaderConfig};
use serde::Deserialize;

use crate::cli::APPLICATION_NAME;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClustersFile {
    pub clusters: BTreeMap<String, ClusterConnection>,
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
        let file: ClustersFile = greenplum_catalog::yaml::from_str(text)?;
        if file.clusters.is_empty() {
            bail!("no clusters defined");
        }
        for name in file.clusters.keys() {
            if !valid_name(name) {
                bail!("cluster name {name:?} may only hold letters, digits, '-', '_' and '.'");
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
        let defaults = ConnectionDefaults {
            application_name: APPLICATION_NAME.to_string(),
            connect_timeout: defaults.connect_timeout,
            statement_timeout: defaults.statement_timeout,
        };
        self.clusters
            .iter()
            .map(|(name, cluster)| {
                let config = cluster
                    .reader_config(&defaults, base)
                    .with_context(|| format!("cluster {name}"))?;
                Ok((name.clone(), config))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenplum_catalog::Endpoint;

    const DEFAULTS: Defaults = Defaults {
        statement_timeout: Some(Duration::from_secs(7)),
        connect_timeout: None,
    };

    #[test]
    fn clusters_become_reader_configs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prod.password"), "pw\n").unwrap();
        let file = ClustersFile::parse(
            "clusters:\n  prod:\n    endpoints: ['cdw:5432', 'scdw:5432']\n    user: gpmon\n    database: postgres\n    password_file: prod.password\n    tls:\n      ca_file: ca.crt\n    connect_timeout: 2s\n  dr:\n    endpoints: ['[::1]:6000']\n    user: gpmon\n    database: postgres\n",
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
            err("clusters:\n  'a b':\n    endpoints: ['x:1']\n    user: u\n    database: d\n")
                .contains("may only hold")
        );
        assert!(
            err("clusters:\n  a:\n    endpoints: []\n    user: u\n    database: d\n")
                .contains("endpoints is empty")
        );
        assert!(err(
            "clusters:\n  a:\n    endpoints: ['x:1']\n    user: u\n    database: d\n    password: p\n"
        )
        .contains("password"));
        assert!(err("clusters:\n  a:\n    endpoints: ['x:1']\n    user: u\n    database: d\n    statement_timeout: soon\n").contains("soon"));
        let file = ClustersFile::parse(
            "clusters:\n  a:\n    endpoints: ['nope']\n    user: u\n    database: d\n",
        )
        .unwrap();
        let e = format!(
            "{:#}",
            file.reader_configs(Path::new("."), DEFAULTS).unwrap_err()
        );
        assert!(e.contains("cluster a") && e.contains("nope"), "{e}");
    }

    #[test]
    fn errors_name_their_line_and_old_keys_their_replacement() {
        let err = |text: &str| format!("{:#}", ClustersFile::parse(text).unwrap_err());
        let unknown = err("clusters:\n  a:\n    endpoints: ['x:1']\n    password: p\n");
        assert!(unknown.contains("line 4"), "{unknown}");
        let bad_duration =
            err("clusters:\n  a:\n    endpoints: ['x:1']\n\n    connect_timeout: soon\n");
        assert!(bad_duration.contains("line 5"), "{bad_duration}");
        let old = err("clusters:\n  a:\n    endpoints: ['x:1']\n    db: postgres\n");
        assert!(
            old.contains("line 4") && old.contains("`db` is now `database`"),
            "{old}"
        );
    }
}
