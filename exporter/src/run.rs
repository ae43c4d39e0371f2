//! Wiring: from parsed flags to a running server, a `check` report, or the metric list.
//! Kept in the library so integration tests start the exporter exactly as the binary does.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use greenplum_catalog::{ClusterReader, ReaderConfig, Snapshot};
use tracing_subscriber::EnvFilter;

use crate::check::{render, verdict, Verdict};
use crate::cli::{Cli, Command, LogArgs, LogFormat};
use crate::clusters::{ClustersFile, Defaults};
use crate::http::{parse_listen_address, router, serve, App};
use crate::metrics::family_names;
use crate::scrape::{Scraper, SnapshotSource};
use crate::web_config::WebConfig;

impl SnapshotSource for ClusterReader {
    fn snapshot(&mut self) -> Pin<Box<dyn Future<Output = Snapshot> + Send + '_>> {
        Box::pin(ClusterReader::snapshot(self))
    }
}

pub fn init_logging(args: &LogArgs) {
    let filter = EnvFilter::new(args.level.as_str());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match args.format {
        LogFormat::Logfmt => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the command the flags name.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve) {
        Command::ListMetrics => {
            for name in family_names() {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
        Command::Check => match check(&cli).await {
            Ok(verdict) => ExitCode::from(verdict as u8),
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::from(Verdict::NoCoordinator as u8)
            }
        },
        Command::Serve => {
            let result = async {
                let server = Server::start(&cli).await?;
                tracing::info!(address = %server.address, "serving metrics");
                server.wait(shutdown_signal()).await
            };
            match result.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn check(cli: &Cli) -> anyhow::Result<Verdict> {
    let config = cli.db.reader_config()?;
    let snapshot = ClusterReader::new(config).snapshot().await;
    print!("{}", render(&snapshot));
    Ok(verdict(&snapshot))
}

/// The router's content for these flags.
pub fn app(cli: &Cli) -> anyhow::Result<App> {
    let mut app = App::default();
    match &cli.web.config_file {
        Some(path) => {
            let file = ClustersFile::load(path)?;
            let defaults = Defaults {
                statement_timeout: cli.db.statement_timeout,
                connect_timeout: cli.db.connect_timeout,
            };
            let base = path.parent().unwrap_or(Path::new("."));
            let configs = file.reader_configs(base, defaults)?;
            app.targets = configs
                .into_iter()
                .map(|(name, config)| (name, scraper(config, cli)))
                .collect::<BTreeMap<_, _>>();
        }
        None => app.default = Some(scraper(cli.db.reader_config()?, cli)),
    }
    Ok(app)
}

fn scraper(config: ReaderConfig, cli: &Cli) -> Arc<Scraper> {
    tracing::info!(endpoints = ?config.endpoints, user = %config.user, db = %config.dbname, "cluster configured");
    Arc::new(Scraper::new(ClusterReader::new(config), cli.web.cache_ttl))
}

/// A bound, running exporter.
pub struct Server {
    pub address: SocketAddr,
    listener: std::net::TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// Reads every config file and binds the port; nothing is served yet.
    pub async fn start(cli: &Cli) -> anyhow::Result<Server> {
        let mut app = app(cli)?;
        let mut tls = None;
        if let Some(path) = &cli.web.web_config {
            let web = WebConfig::load(path)?;
            app.auth = web.basic_auth().map(Arc::new);
            app.response_headers = web
                .response_headers()
                .map_err(|e| anyhow::anyhow!("web config {}: {e}", path.display()))?;
            tls = web.rustls(path)?;
        }
        let address = parse_listen_address(&cli.web.listen_address)?;
        let listener = std::net::TcpListener::bind(address)
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Server {
            address: listener.local_addr()?,
            listener,
            router: router(app),
            tls,
        })
    }

    /// Serves until `shutdown` resolves.
    pub async fn wait(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve(self.listener, self.router, self.tls, shutdown).await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
