//! How to reach a cluster: [`ReaderConfig`], from code or from the libpq environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::endpoint::{ConnectSettings, Endpoint};
use crate::error::CatalogError;
use crate::tls::TlsConfig;

/// How to reach and read a cluster.
#[derive(Clone)]
pub struct ReaderConfig {
    /// Coordinator and standby, in preference order.
    pub endpoints: Vec<Endpoint>,
    /// The database role the catalog is read as (see docs/OPERATIONS.md for its grants).
    pub user: String,
    /// The database the sessions connect to (any database sees the cluster-wide catalog).
    pub dbname: String,
    /// Never logged, never in `Debug` output.
    pub password: Option<String>,
    /// `application_name` of every session, so a DBA can tell our sessions in
    /// `pg_stat_activity`.
    pub application_name: String,
    /// Bounds each connection attempt (TCP, TLS, authentication) and each probe query.
    pub connect_timeout: Duration,
    /// Set on the session: bounds every catalog query (above all `gp_stat_replication`,
    /// which hangs on an unreachable primary until FTS acts).
    pub statement_timeout: Duration,
    /// `None`: plain TCP. `Some`: TLS required, server verified against the CA file.
    pub tls: Option<TlsConfig>,
}

impl fmt::Debug for ReaderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderConfig")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

/// `application_name` when the service sets none.
pub const DEFAULT_APPLICATION_NAME: &str = "greenplum-catalog";
/// Bound on each connection attempt when none is configured.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each catalog statement when none is configured.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

impl ReaderConfig {
    /// A config with the default application name and timeouts, no password, no TLS.
    pub fn new(
        endpoints: Vec<Endpoint>,
        user: impl Into<String>,
        dbname: impl Into<String>,
    ) -> Self {
        ReaderConfig {
            endpoints,
            user: user.into(),
            dbname: dbname.into(),
            password: None,
            application_name: DEFAULT_APPLICATION_NAME.to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            tls: None,
        }
    }

    /// From the libpq environment of this process; see [`ReaderConfig::from_libpq_vars`].
    pub fn from_libpq_env() -> Result<Self, CatalogError> {
        Self::from_libpq_vars(|name| std::env::var(name).ok())
    }

    /// From libpq-style variables, looked up with `var`:
    /// `PGHOST` and `PGPORT` (comma-separated lists like libpq's multi-host syntax; one port
    /// applies to every host), `PGUSER` (default `USER`), `PGDATABASE` (default: the user),
    /// `PGAPPNAME`, `PGCONNECT_TIMEOUT` (seconds), `PGPASSWORD`, else the password file
    /// `PGPASSFILE` (default `~/.pgpass`, ignored like libpq does when others can read it),
    /// `PGSSLMODE` (`require`, `verify-ca` and `verify-full` all mean verified TLS here) with
    /// `PGSSLROOTCERT` (default `~/.postgresql/root.crt`), `PGSSLCERT`, `PGSSLKEY`.
    pub fn from_libpq_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, CatalogError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoints = endpoints_from(var("PGHOST"), var("PGPORT"))?;
        let user = var("PGUSER")
            .or_else(|| var("USER"))
            .unwrap_or_else(|| "gpadmin".into());
        let dbname = var("PGDATABASE").unwrap_or_else(|| user.clone());
        let mut config = ReaderConfig::new(endpoints, user, dbname);
        if let Some(name) = var("PGAPPNAME") {
            config.application_name = name;
        }
        if let Some(text) = var("PGCONNECT_TIMEOUT") {
            let seconds: u64 = text.trim().parse().map_err(|_| CatalogError::Environment {
                name: "PGCONNECT_TIMEOUT",
                why: format!("{text:?} is not a whole number of seconds"),
            })?;
            // libpq: zero means wait forever; we never do, so keep the default. It also
            // raises anything below 2 s to 2 s.
            if seconds > 0 {
                config.connect_timeout = Duration::from_secs(seconds.max(2));
            }
        }
        let home = var("HOME").map(PathBuf::from);
        config.password = match var("PGPASSWORD") {
            Some(password) => Some(password),
            None => password_from_file(&config, var("PGPASSFILE"), home.as_deref())?,
        };
        config.tls = tls_from(
            var("PGSSLMODE"),
            var("PGSSLROOTCERT"),
            var("PGSSLCERT"),
            var("PGSSLKEY"),
            home.as_deref(),
        )?;
        Ok(config)
    }

    pub(crate) fn connect_settings(&self) -> Result<ConnectSettings, CatalogError> {
        Ok(ConnectSettings {
            user: self.user.clone(),
            dbname: self.dbname.clone(),
            password: self.password.clone(),
            application_name: self.application_name.clone(),
            connect_timeout: self.connect_timeout,
            options: crate::queries::session::startup_options(self.statement_timeout),
            tls: self.tls.as_ref().map(TlsConfig::connector).transpose()?,
        })
    }
}

fn endpoints_from(
    hosts: Option<String>,
    ports: Option<String>,
) -> Result<Vec<Endpoint>, CatalogError> {
    let hosts = hosts.unwrap_or_else(|| "localhost".into());
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    let ports: Vec<u16> = match &ports {
        None => vec![5432],
        Some(text) => text
            .split(',')
            .map(|p| match p.trim().parse::<u16>() {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(CatalogError::Environment {
                    name: "PGPORT",
                    why: format!("{p:?} is not a port number"),
                }),
            })
            .collect::<Result<_, _>>()?,
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(CatalogError::Environment {
            name: "PGPORT",
            why: format!("{} ports for {} hosts in PGHOST", ports.len(), hosts.len()),
        });
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            if host.is_empty() || host.starts_with('/') {
                return Err(CatalogError::Environment {
                    name: "PGHOST",
                    why: format!("{host:?} is not a TCP host (Unix sockets are not supported)"),
                });
            }
            Ok(Endpoint::new(
                *host,
                ports[if ports.len() == 1 { 0 } else { i }],
            ))
        })
        .collect()
}

fn password_from_file(
    config: &ReaderConfig,
    explicit: Option<String>,
    home: Option<&Path>,
) -> Result<Option<String>, CatalogError> {
    let path = match (&explicit, home) {
        (Some(path), _) => PathBuf::from(path),
        (None, Some(home)) => home.join(".pgpass"),
        (None, None) => return Ok(None),
    };
    let contents = match std::fs::read_to_string(&path) {
        Ok(contents) => contents,
        // A missing default file is normal; a missing file that was named is a mistake.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(None)
        }
        Err(source) => return Err(CatalogError::PasswordFile { path, source }),
    };
    if readable_by_others(&path) {
        tracing::warn!(
            path = %path.display(),
            "password file has group or world access; ignored (permissions should be 0600)"
        );
        return Ok(None);
    }
    Ok(config.endpoints.iter().find_map(|e| {
        crate::pgpass::lookup(&contents, &e.host, e.port, &config.dbname, &config.user)
    }))
}

fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o077 != 0)
        .unwrap_or(false)
}

fn tls_from(
    mode: Option<String>,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    home: Option<&Path>,
) -> Result<Option<TlsConfig>, CatalogError> {
    match mode.as_deref().map(str::trim) {
        None | Some("disable" | "allow" | "prefer") => Ok(None),
        Some("require" | "verify-ca" | "verify-full") => {
            let ca_file = root
                .map(PathBuf::from)
                .or_else(|| home.map(|h| h.join(".postgresql/root.crt")))
                .ok_or_else(|| CatalogError::Environment {
                    name: "PGSSLROOTCERT",
                    why: "TLS needs a CA file (PGSSLROOTCERT or ~/.postgresql/root.crt)".into(),
                })?;
            Ok(Some(TlsConfig {
                ca_file,
                client_cert: cert.map(PathBuf::from),
                client_key: key.map(PathBuf::from),
            }))
        }
        Some(other) => Err(CatalogError::Environment {
            name: "PGSSLMODE",
            why: format!("unknown mode {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn libpq_defaults() {
        let config = ReaderConfig::from_libpq_vars(vars(&[("USER", "gpadmin")])).unwrap();
        assert_eq!(config.endpoints, vec![Endpoint::new("localhost", 5432)]);
        assert_eq!(
            (config.user.as_str(), config.dbname.as_str()),
            ("gpadmin", "gpadmin")
        );
        assert_eq!(config.password, None);
        assert_eq!(config.tls, None);
        assert_eq!(config.application_name, DEFAULT_APPLICATION_NAME);
    }

    #[test]
    fn libpq_multi_host_and_password_never_in_debug() {
        let config = ReaderConfig::from_libpq_vars(vars(&[
            ("PGHOST", "cdw,scdw"),
            ("PGPORT", "6000,6001"),
            ("PGUSER", "monitor"),
            ("PGDATABASE", "postgres"),
            ("PGPASSWORD", "s3cret-value"),
            ("PGCONNECT_TIMEOUT", "1"),
            ("PGAPPNAME", "exporter"),
        ]))
        .unwrap();
        assert_eq!(
            config.endpoints,
            vec![Endpoint::new("cdw", 6000), Endpoint::new("scdw", 6001)]
        );
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.application_name, "exporter");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret-value"), "{debug}");
        assert!(debug.contains("<redacted>"));
        let one_port =
            ReaderConfig::from_libpq_vars(vars(&[("PGHOST", "a,b"), ("PGPORT", "7000")])).unwrap();
        assert!(one_port.endpoints.iter().all(|e| e.port == 7000));
    }

    #[test]
    fn libpq_bad_values_are_named() {
        for (pairs, name) in [
            (vec![("PGPORT", "x")], "PGPORT"),
            (vec![("PGHOST", "a,b,c"), ("PGPORT", "1,2")], "PGPORT"),
            (vec![("PGHOST", "/tmp")], "PGHOST"),
            (vec![("PGCONNECT_TIMEOUT", "soon")], "PGCONNECT_TIMEOUT"),
            (vec![("PGSSLMODE", "sometimes")], "PGSSLMODE"),
            (
                vec![("PGPASSFILE", "/nonexistent/pgpass")],
                "/nonexistent/pgpass",
            ),
        ] {
            let error = ReaderConfig::from_libpq_vars(vars(&pairs))
                .unwrap_err()
                .to_string();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn password_file_is_used_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "scdw:6001:postgres:gpadmin:from-file\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = [
            ("PGHOST", "cdw,scdw"),
            ("PGPORT", "6000,6001"),
            ("PGUSER", "gpadmin"),
            ("PGDATABASE", "postgres"),
            ("PGPASSFILE", path.to_str().unwrap()),
        ];
        let config = ReaderConfig::from_libpq_vars(vars(&env)).unwrap();
        assert_eq!(config.password.as_deref(), Some("from-file"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = ReaderConfig::from_libpq_vars(vars(&env)).unwrap();
        assert_eq!(config.password, None, "a world-readable file is ignored");
        // A missing default ~/.pgpass is fine.
        let config = ReaderConfig::from_libpq_vars(vars(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!(config.password, None);
    }

    #[test]
    fn tls_from_libpq_modes() {
        let config = ReaderConfig::from_libpq_vars(vars(&[
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
            ("PGSSLCERT", "/etc/c.pem"),
            ("PGSSLKEY", "/etc/c.key"),
        ]))
        .unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.ca_file, PathBuf::from("/etc/ca.pem"));
        assert_eq!(tls.client_key, Some(PathBuf::from("/etc/c.key")));
        let config = ReaderConfig::from_libpq_vars(vars(&[("PGSSLMODE", "prefer")])).unwrap();
        assert_eq!(config.tls, None);
    }
}
