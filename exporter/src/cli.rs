//! Command line: `greenplum-exporter [serve|check|list-metrics]` and its flags.
//!
//! Database flags override the libpq environment (`PGHOST`, `PGPORT`, `PGUSER`,
//! `PGDATABASE`, `PGPASSWORD`/`PGPASSFILE`, `PGSSLROOTCERT`...), which the catalog crate reads.
//! A password never comes from argv: it is visible to every user in `ps`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use greenplum_catalog::{parse_duration, Endpoint, ReaderConfig, TlsConfig};

#[derive(Debug, Parser)]
#[command(
    name = "greenplum-exporter",
    version,
    about = "Prometheus exporter for the high-availability state of Greenplum clusters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Serve metrics over HTTP (the default).
    Serve,
    /// Read the cluster once, print a gpstate-like table; exit 0 healthy, 1 unhealthy,
    /// 2 no coordinator answered.
    Check,
    /// Print every metric name the exporter can expose, one per line, sorted.
    ListMetrics,
}

#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Coordinator endpoint HOST:PORT; repeat for the standby (default: PGHOST/PGPORT).
    #[arg(long = "coordinator", value_name = "HOST:PORT", value_parser = EndpointParser, global = true)]
    pub coordinators: Vec<Endpoint>,
    /// Database user (default: PGUSER).
    #[arg(long = "db.user", value_name = "USER", global = true)]
    pub user: Option<String>,
    /// Database to connect to (default: PGDATABASE).
    #[arg(long = "db.name", value_name = "DB", global = true)]
    pub name: Option<String>,
    /// File holding the password (default: PGPASSWORD, else PGPASSFILE / ~/.pgpass).
    #[arg(long = "db.password-file", value_name = "FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// CA certificate to verify the database's TLS certificate; makes TLS mandatory.
    #[arg(long = "db.sslrootcert", value_name = "FILE", global = true)]
    pub sslrootcert: Option<PathBuf>,
    /// Bound on every catalog query, e.g. 10s.
    #[arg(long = "statement-timeout", value_name = "DURATION", value_parser = parse_duration, global = true)]
    pub statement_timeout: Option<Duration>,
    /// Bound on each connection attempt and endpoint probe, e.g. 5s.
    #[arg(long = "connect-timeout", value_name = "DURATION", value_parser = parse_duration, global = true)]
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, clap::Args)]
pub struct WebArgs {
    /// Serve a catalog round this recent to further scrapes instead of reading again
    /// (0s: every scrape reads, concurrent scrapes still share one round).
    #[arg(long = "cache-ttl", value_name = "DURATION", value_parser = parse_duration, default_value = "0s", global = true)]
    pub cache_ttl: Duration,
    /// Address to listen on.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9297",
        global = true
    )]
    pub listen_address: String,
    /// TLS and basic auth, in the format of Prometheus' exporter-toolkit.
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    pub web_config: Option<PathBuf>,
    /// Clusters served on /probe?target=NAME (YAML; see README).
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Minimum level: error, warn, info, debug, trace.
    #[arg(
        long = "log.level",
        value_name = "LEVEL",
        default_value = "info",
        global = true
    )]
    pub level: tracing::Level,
    /// Output format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Logfmt, global = true)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Parses `--coordinator` without clap's echo of the value: a mistaken `user:password@host`
/// must not be copied from argv into the service's log.
#[derive(Debug, Clone, Copy)]
struct EndpointParser;

impl clap::builder::TypedValueParser for EndpointParser {
    type Value = Endpoint;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Endpoint, clap::Error> {
        let refuse = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("--coordinator: {message}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("not valid UTF-8".into()))?;
        text.parse()
            .map_err(|e: greenplum_catalog::CatalogError| refuse(e.to_string()))
    }
}

pub const APPLICATION_NAME: &str = "greenplum-exporter";

/// Reads a password file: the first line, without its line ending (the catalog's reader,
/// the same for `--config.file` and the remediator's policy).
pub fn read_password_file(path: &Path) -> anyhow::Result<String> {
    Ok(greenplum_catalog::connection::read_password_file(path)?)
}

impl DbArgs {
    /// The reader config of the flag cluster: libpq environment, then flags on top.
    pub fn reader_config(&self) -> anyhow::Result<ReaderConfig> {
        let mut config = ReaderConfig::from_libpq_env()
            .context("cannot read the libpq environment (PGHOST, PGPORT, ...)")?;
        self.apply(&mut config)?;
        Ok(config)
    }

    pub fn apply(&self, config: &mut ReaderConfig) -> anyhow::Result<()> {
        config.application_name = APPLICATION_NAME.to_string();
        if !self.coordinators.is_empty() {
            config.endpoints = self.coordinators.clone();
        }
        if let Some(user) = &self.user {
            config.user = user.clone();
        }
        if let Some(name) = &self.name {
            config.dbname = name.clone();
        }
        if let Some(path) = &self.password_file {
            config.password = Some(read_password_file(path)?);
        }
        if let Some(ca) = &self.sslrootcert {
            config.tls = Some(TlsConfig::with_ca(ca));
        }
        if let Some(timeout) = self.statement_timeout {
            config.statement_timeout = timeout;
        }
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout = timeout;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("greenplum-exporter").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn flags_go_before_or_after_the_subcommand() {
        let before = parse(&[
            "--coordinator",
            "cdw:5432",
            "--coordinator",
            "scdw:5432",
            "check",
        ]);
        assert_eq!(before.command, Some(Command::Check));
        assert_eq!(before.db.coordinators.len(), 2);
        let cli = parse(&[
            "check",
            "--coordinator",
            "cdw:5432",
            "--coordinator",
            "scdw:5432",
            "--statement-timeout",
            "1m30s",
        ]);
        assert_eq!(cli.command, Some(Command::Check));
        assert_eq!(
            cli.db.coordinators,
            vec![Endpoint::new("cdw", 5432), Endpoint::new("scdw", 5432)]
        );
        assert_eq!(cli.db.statement_timeout, Some(Duration::from_secs(90)));
        let default = parse(&[]);
        assert_eq!(default.command, None);
        assert_eq!(default.web.listen_address, ":9297");
        assert_eq!(default.web.cache_ttl, Duration::ZERO);
        assert_eq!(default.log.format, LogFormat::Logfmt);
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        let args = ["greenplum-exporter", "--coordinator", "no-port"];
        let err = Cli::try_parse_from(args).unwrap_err().to_string();
        assert!(err.contains("host:port"), "{err}");
        let args = ["greenplum-exporter", "--cache-ttl", "soon"];
        assert!(Cli::try_parse_from(args).is_err());
        // There is no flag that takes a password.
        let args = ["greenplum-exporter", "--db.password", "x"];
        assert!(Cli::try_parse_from(args).is_err());
    }

    #[test]
    fn flags_override_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "hunter2\n").unwrap();
        let cli = parse(&[
            "--coordinator",
            "cdw:6000",
            "--db.user",
            "gpmon",
            "--db.name",
            "postgres",
            "--db.password-file",
            file.to_str().unwrap(),
            "--db.sslrootcert",
            "/etc/ca.crt",
            "--connect-timeout",
            "3s",
        ]);
        let mut config = ReaderConfig::new(vec![Endpoint::new("localhost", 5432)], "me", "me");
        cli.db.apply(&mut config).unwrap();
        assert_eq!(config.endpoints, vec![Endpoint::new("cdw", 6000)]);
        assert_eq!(
            (config.user.as_str(), config.dbname.as_str()),
            ("gpmon", "postgres")
        );
        assert_eq!(config.password.as_deref(), Some("hunter2"));
        assert_eq!(config.tls, Some(TlsConfig::with_ca("/etc/ca.crt")));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.application_name, APPLICATION_NAME);
    }

    #[test]
    fn empty_or_missing_password_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(read_password_file(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let missing = dir.path().join("missing");
        let err = read_password_file(&missing).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
