//! Wiring: from parsed flags to a running service, a policy check, the metric list, or a
//! request to the API. Kept in the library so tests can start the service exactly as the
//! binary does ([`Service::prepare`], then [`Service::serve`]).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::auth::{read_secret, Authenticator, Operators};
use crate::backends::RealBackends;
use crate::cli::{AuthArgs, BreakerCommand, Cli, Command, ServeArgs, TlsArgs};
use crate::client;
use crate::http::{self, DEFAULT_READ_TIMEOUT};
use crate::metrics::Metrics;
use crate::planner::{self, Backends, PlannerConfig};
use crate::policy::Policy;
use crate::state::AppState;
use crate::tls;

mod files;

use files::{open_journal, prepare_run_dir, restrict_umask};

/// Runs the command the flags name: exit 0, or 1 with the error on stderr.
pub fn run(cli: Cli) -> ExitCode {
    match command(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greenplum-remediator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn command(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(*args),
        Command::CheckPolicy { file } => check_policy(&file),
        Command::ListMetrics => list_metrics(),
        Command::Actions { command } => client::actions(command),
        Command::Pause { client, reason } => {
            client::control(&client, "/api/v1/pause", &reason, None)
        }
        Command::Resume { client, reason } => {
            client::control(&client, "/api/v1/resume", &reason, None)
        }
        Command::Breaker {
            command:
                BreakerCommand::Reset {
                    client,
                    cluster,
                    reason,
                },
        } => client::control(&client, "/api/v1/breaker/reset", &reason, cluster),
    }
}

fn check_policy(file: &Path) -> Result<()> {
    let policy = Policy::load(file)?;
    println!(
        "{}: valid ({} clusters, {} rules)",
        file.display(),
        policy.clusters.len(),
        policy.rules.len()
    );
    Ok(())
}

fn list_metrics() -> Result<()> {
    let metrics = Metrics::new("unknown");
    for name in metrics.family_names().context("encode metrics")? {
        println!("{name}");
    }
    Ok(())
}

/// Logs to stdout, `RUST_LOG` or `info`. A second initialisation (tests) keeps the first.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// `serve`: prepares the service, then serves it until Ctrl-C.
fn serve(args: ServeArgs) -> Result<()> {
    restrict_umask();
    init_logging();
    let service = Service::prepare(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(service.serve(async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}

/// A prepared service: every file read, the journal open, the port bound; nothing runs yet.
pub struct Service {
    /// The bound address (the port the system chose for port 0).
    pub address: SocketAddr,
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    read_timeout: Duration,
    auth: Authenticator,
    mtls: bool,
    body_limit: usize,
    planner: PlannerConfig,
    backends: Arc<dyn Backends>,
}

impl Service {
    /// Reads the policy and the credentials, opens the journal and the run directory, and
    /// binds the port, with the real catalog and executors. Blocking (the PostgreSQL journal
    /// connects synchronously): call it outside an async runtime.
    pub fn prepare(args: &ServeArgs) -> Result<Service> {
        let policy = Arc::new(Policy::load(&args.policy)?);
        let (auth, tls) = listener_security(args)?;
        let journal = open_journal(args)?;
        let metrics = Arc::new(Metrics::new(&args.revision));
        metrics
            .operator_auth_enabled
            .set(i64::from(auth.operators_enabled()));
        metrics
            .paused
            .set(i64::from(journal.paused().context("read pause state")?));
        let run_dir = args
            .run_dir
            .clone()
            .unwrap_or_else(|| args.journal.parent().unwrap_or(Path::new(".")).join("runs"));
        prepare_run_dir(&run_dir)?;
        let backends = Arc::new(RealBackends::new(&policy)?);
        let listener =
            TcpListener::bind(args.listen).with_context(|| format!("listen on {}", args.listen))?;
        Ok(Service {
            address: listener.local_addr().context("read the bound address")?,
            listener,
            tls,
            read_timeout: args.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT),
            auth,
            mtls: args.tls.client_ca.is_some(),
            body_limit: args.body_limit,
            planner: PlannerConfig {
                journal,
                metrics,
                policy,
                run_dir,
                sweep_interval: args.sweep_interval,
            },
            backends,
        })
    }

    /// The same service with other catalog sources and executors (test doubles).
    pub fn with_backends(mut self, backends: Arc<dyn Backends>) -> Service {
        self.backends = backends;
        self
    }

    /// Starts the planner and serves webhook, API and metrics until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let state = Arc::new(AppState {
            journal: self.planner.journal.clone(),
            metrics: self.planner.metrics.clone(),
            auth: self.auth,
            mtls: self.mtls,
            body_limit: self.body_limit,
            planner: Some(planner::start(self.planner, self.backends)),
        });
        tracing::info!(address = %self.address, tls = self.tls.is_some(), mtls = self.mtls, "greenplum-remediator listening");
        http::serve(
            self.listener,
            http::router(state),
            self.tls,
            self.read_timeout,
            shutdown,
        )
        .await
        .with_context(|| format!("serve on {}", self.address))
    }
}

/// Who may call, and over what: the authenticator and the TLS configuration the flags name,
/// refusing combinations that would leave the service open or an operator unnamed.
fn listener_security(args: &ServeArgs) -> Result<(Authenticator, Option<rustls::ServerConfig>)> {
    let mut auth = credentials(&args.auth)?;
    let tls = server_tls(&args.tls)?;
    let mtls = args.tls.client_ca.is_some();
    if mtls {
        auth = auth.with_mtls();
    }
    if args.auth.operator_client_cert {
        if !mtls || !auth.operators_enabled() {
            bail!(
                "--auth.operator-client-cert needs --auth.operators-file (the names) and \
                 --web.tls-client-ca-file (verified client certificates)"
            );
        }
        auth = auth.with_operator_client_certs();
    }
    if !auth.is_configured() && !args.listen.ip().is_loopback() && !args.insecure_no_auth {
        bail!(
            "refusing to serve {} without authentication: give --auth.token-file, basic auth \
             or --web.tls-client-ca-file (mTLS), or --insecure-no-auth",
            args.listen
        );
    }
    if !auth.operators_enabled() {
        tracing::warn!(
            "no --auth.operators-file: the webhook's credentials can approve actions (even \
             activate_standby) and who is whatever the client says; the journal marks such \
             decisions as claimed by the client"
        );
    }
    Ok((auth, tls))
}

fn server_tls(args: &TlsArgs) -> Result<Option<rustls::ServerConfig>> {
    match args.files()? {
        Some(files) => Ok(Some(tls::server_config(&files).context("configure TLS")?)),
        None => Ok(None),
    }
}

/// The secrets the flags name: webhook token, basic auth, operators.
fn credentials(args: &AuthArgs) -> Result<Authenticator> {
    let mut auth = Authenticator::default();
    let webhook_token = match &args.token_file {
        Some(path) => Some(read_secret(path)?),
        None => None,
    };
    if let Some(token) = &webhook_token {
        auth = auth.with_token(token);
    }
    match (&args.basic_user, &args.basic_password_file) {
        (Some(user), Some(path)) => auth = auth.with_basic(user.as_bytes(), &read_secret(path)?),
        (None, None) => {}
        _ => bail!("--auth.basic-user and --auth.basic-password-file go together"),
    }
    if let Some(path) = &args.operators_file {
        let operators = Operators::load(path)?;
        if let Some(token) = &webhook_token {
            if operators.holds(token) {
                bail!(
                    "{}: an operator's token is also the webhook's (--auth.token-file): \
                     Alertmanager could then approve; give operators their own tokens",
                    path.display()
                );
            }
        }
        let names: Vec<&str> = operators.names().collect();
        tracing::info!(operators = ?names, "decisions need an operator's token");
        auth = auth.with_operators(operators);
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use clap::Parser;

    use super::*;

    /// The service starts from flags alone, on a port the system picks, and answers.
    #[test]
    fn a_prepared_service_serves_until_shut_down() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = dir.path().join("policy.yml");
        std::fs::write(&policy, include_str!("../examples/policy.yml")).expect("write policy");
        let journal = dir.path().join("journal.db");
        let cli = Cli::try_parse_from([
            "greenplum-remediator".as_ref(),
            "serve".as_ref(),
            "--policy".as_ref(),
            policy.as_os_str(),
            "--journal.path".as_ref(),
            journal.as_os_str(),
            "--web.listen-address".as_ref(),
            "127.0.0.1:0".as_ref(),
        ])
        .expect("flags");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        let service = Service::prepare(&args).expect("prepare");
        let address = service.address;
        assert_ne!(address.port(), 0);
        assert!(dir.path().join("runs").is_dir(), "run directory created");

        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(service.serve(async {
            let _ = stopped.await;
        }));
        // The runtime's workers serve; this thread is the client.
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        let _ = stop.send(());
        runtime
            .block_on(server)
            .expect("join")
            .expect("served until shut down");
    }
}
