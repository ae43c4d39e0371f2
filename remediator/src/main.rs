//! greenplum-remediator: CLI and wiring only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use greenplum_remediator::auth::{read_secret, Authenticator, Operators};
use greenplum_remediator::backends::RealBackends;
use greenplum_remediator::http::{self, AppState, DEFAULT_BODY_LIMIT, DEFAULT_READ_TIMEOUT};
use greenplum_remediator::journal::{Journal, PostgresJournal, SqliteJournal};
use greenplum_remediator::metrics::Metrics;
use greenplum_remediator::planner::{self, PlannerConfig};
use greenplum_remediator::policy::{Policy, PolicyDuration};
use greenplum_remediator::tls::{self, TlsFiles};

#[derive(Parser)]
#[command(
    name = "greenplum-remediator",
    version,
    about = "Alert-driven, policy-approved healing of Greenplum clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive Alertmanager webhooks and act on them.
    Serve(Box<ServeArgs>),
    /// Validate a policy file; errors name their line.
    CheckPolicy { file: PathBuf },
    /// Inspect, approve or reject actions (through the API).
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Turn the kill switch on: events are journalled, nothing runs.
    Pause {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        reason: String,
    },
    /// Turn the kill switch off.
    Resume {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        reason: String,
    },
    /// Circuit breaker.
    Breaker {
        #[command(subcommand)]
        command: BreakerCommand,
    },
    /// Print every exposed metric family name, one per line.
    ListMetrics,
}

#[derive(Subcommand)]
enum ActionsCommand {
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        state: Option<String>,
    },
    Show {
        #[command(flatten)]
        client: ClientArgs,
        id: i64,
    },
    Approve {
        #[command(flatten)]
        client: ClientArgs,
        id: i64,
        #[arg(long)]
        reason: String,
    },
    Reject {
        #[command(flatten)]
        client: ClientArgs,
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum BreakerCommand {
    Reset {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long = "policy", env = "GREENPLUM_REMEDIATOR_POLICY")]
    policy: PathBuf,
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9298")]
    listen: SocketAddr,
    #[arg(
        long = "journal.path",
        default_value = "/var/lib/greenplum-remediator/journal.db"
    )]
    journal: PathBuf,
    /// A PostgreSQL journal shared by replicas (`postgres://USER@HOST:PORT/DB`, or libpq
    /// key=value), instead of `--journal.path`. No password here (argv is public): it comes
    /// from --journal.password-file or GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD.
    #[arg(long = "journal.url", env = "GREENPLUM_REMEDIATOR_JOURNAL_URL")]
    journal_url: Option<String>,
    #[arg(
        long = "journal.password-file",
        env = "GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD_FILE"
    )]
    journal_password_file: Option<PathBuf>,
    /// How often undecided events are re-read from the journal (work left by a restart or
    /// received by another replica) and approvals expired.
    #[arg(long = "planner.sweep-interval", default_value = "30s", value_parser = parse_duration)]
    sweep_interval: Duration,
    /// Where command output is written while it runs (default: `runs/` next to the journal).
    #[arg(long = "run-dir")]
    run_dir: Option<PathBuf>,
    #[arg(long = "web.max-body-bytes", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// How long a client may take to send its request headers, and then its body; a slower
    /// connection is closed (408 for a body). Default 10s.
    #[arg(long = "web.read-timeout", value_parser = parse_duration)]
    read_timeout: Option<Duration>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Serve a non-loopback address without authentication (never in production).
    #[arg(long = "insecure-no-auth")]
    insecure_no_auth: bool,
    /// Revision reported by greenplum_remediator_build_info.
    #[arg(
        long = "build.revision",
        env = "GREENPLUM_REMEDIATOR_REVISION",
        default_value = "unknown"
    )]
    revision: String,
}

#[derive(Args)]
struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (with --web.tls-key-file).
    #[arg(long = "web.tls-cert-file")]
    cert: Option<PathBuf>,
    #[arg(long = "web.tls-key-file")]
    key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (mTLS); a verified client is
    /// authenticated.
    #[arg(long = "web.tls-client-ca-file")]
    client_ca: Option<PathBuf>,
}

impl TlsArgs {
    fn files(&self) -> Result<Option<TlsFiles>> {
        match (&self.cert, &self.key, &self.client_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), client_ca) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.clone(),
            })),
            (None, None, Some(_)) => {
                bail!("--web.tls-client-ca-file needs --web.tls-cert-file and --web.tls-key-file")
            }
            _ => bail!("--web.tls-cert-file and --web.tls-key-file go together"),
        }
    }
}

#[derive(Args)]
struct AuthArgs {
    /// File holding the bearer token Alertmanager sends (and, without
    /// --auth.operators-file, the CLI).
    #[arg(long = "auth.token-file", env = "GREENPLUM_REMEDIATOR_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Operators, one `name token` per line: approve, reject, pause, resume and breaker reset
    /// then need an operator's token, and the journal records that operator's name.
    #[arg(
        long = "auth.operators-file",
        env = "GREENPLUM_REMEDIATOR_OPERATORS_FILE"
    )]
    operators_file: Option<PathBuf>,
    /// Also name an operator by a verified client certificate (mTLS) whose subject CN is
    /// their name in --auth.operators-file; no token needed then. Needs
    /// --web.tls-client-ca-file, and a CA that issues each CN to that person only.
    #[arg(long = "auth.operator-client-cert")]
    operator_client_cert: bool,
    #[arg(long = "auth.basic-user")]
    basic_user: Option<String>,
    #[arg(long = "auth.basic-password-file")]
    basic_password_file: Option<PathBuf>,
}

#[derive(Args)]
struct ClientArgs {
    #[arg(
        long = "url",
        env = "GREENPLUM_REMEDIATOR_URL",
        default_value = "http://127.0.0.1:9298"
    )]
    url: String,
    /// The token to send: an operator's (from the server's --auth.operators-file) for
    /// approve, reject, pause, resume and breaker reset.
    #[arg(long = "auth.token-file", env = "GREENPLUM_REMEDIATOR_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Recorded as who decided (default: $USER) when the server has no operators file; with
    /// one, the token names the operator and this is only a note.
    #[arg(long = "who", env = "USER", default_value = "unknown")]
    who: String,
    #[command(flatten)]
    tls: ClientTlsArgs,
}

// HTTPS to the API (`--url https://...`). A plain comment: a doc comment on a flattened
// Args struct becomes the subcommand's about text.
#[derive(Args)]
struct ClientTlsArgs {
    /// PEM CA certificates that sign the server's certificate (default: the system's web
    /// roots, webpki-roots).
    #[arg(long = "tls.ca-file")]
    ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for a server that requires mTLS.
    #[arg(long = "tls.cert-file")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = "tls.key-file")]
    key: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::CheckPolicy { file } => check_policy(&file),
        Command::ListMetrics => list_metrics(),
        Command::Actions { command } => actions(command),
        Command::Pause { client, reason } => control(&client, "/api/v1/pause", &reason, None),
        Command::Resume { client, reason } => control(&client, "/api/v1/resume", &reason, None),
        Command::Breaker {
            command:
                BreakerCommand::Reset {
                    client,
                    cluster,
                    reason,
                },
        } => control(&client, "/api/v1/breaker/reset", &reason, cluster),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greenplum-remediator: {e:#}");
            std::process::ExitCode::FAILURE
        }
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

fn authenticator(args: &AuthArgs) -> Result<Authenticator> {
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

/// Files the service creates are not for every user: the journal holds alert bodies, host
/// names and tool output. Group-readable, so an operators group can read the journal.
fn restrict_umask() {
    use nix::sys::stat::{umask, Mode};
    umask(Mode::from_bits_truncate(0o027));
}

/// Sets `path` to `mode` when it grants group or others more than `mode` does: a file or
/// directory created earlier (by an older version, or by hand) is tightened, and the log
/// says so.
fn restrict_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)
        .with_context(|| format!("stat {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    if current & !mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), from = format!("{current:04o}"), to = format!("{mode:04o}"), "tightening permissions");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:04o} {}", path.display()))?;
    }
    Ok(())
}

/// The run directory (command output) exists, mode 0700.
fn prepare_run_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("create run directory {}", path.display()))?;
    restrict_mode(path, 0o700)
}

/// The SQLite journal file exists, mode 0600, before SQLite opens it (its -wal and -shm
/// files then get the same mode from SQLite).
fn prepare_journal_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict_mode(path, 0o600),
        Err(e) => Err(e).with_context(|| format!("create journal {}", path.display())),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    PolicyDuration::parse(text).map(|d| d.0)
}

/// Environment variable holding the PostgreSQL journal's password (never a flag).
const JOURNAL_PASSWORD_ENV: &str = "GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD";

fn open_journal(args: &ServeArgs) -> Result<Arc<dyn Journal>> {
    let Some(url) = &args.journal_url else {
        if let Some(dir) = args.journal.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create journal directory {}", dir.display()))?;
        }
        prepare_journal_file(&args.journal)?;
        let journal = SqliteJournal::open(&args.journal)
            .with_context(|| format!("open journal {}", args.journal.display()))?;
        return Ok(Arc::new(journal));
    };
    let mut config: postgres::Config = url
        .parse()
        .context("--journal.url is not a PostgreSQL connection string")?;
    if config.get_password().is_some() {
        bail!(
            "--journal.url holds a password, and the command line is visible to every user: \
             give it with --journal.password-file or {JOURNAL_PASSWORD_ENV}"
        );
    }
    let password = match (
        &args.journal_password_file,
        std::env::var(JOURNAL_PASSWORD_ENV),
    ) {
        (Some(path), _) => Some(read_secret(path)?),
        (None, Ok(value)) if !value.is_empty() => Some(value.into_bytes()),
        _ => None,
    };
    if let Some(password) = password {
        config.password(password);
    }
    let journal = PostgresJournal::connect(config).context("open the PostgreSQL journal")?;
    Ok(Arc::new(journal))
}

fn serve(args: ServeArgs) -> Result<()> {
    restrict_umask();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let policy = Arc::new(Policy::load(&args.policy)?);
    let mut auth = authenticator(&args.auth)?;
    let tls = match args.tls.files()? {
        Some(files) => Some(tls::server_config(&files).context("configure TLS")?),
        None => None,
    };
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
    let journal = open_journal(&args)?;
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
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async move {
        let handle = planner::start(
            PlannerConfig {
                journal: journal.clone(),
                metrics: metrics.clone(),
                policy,
                run_dir,
                sweep_interval: args.sweep_interval,
            },
            backends,
        );
        let state = Arc::new(AppState {
            journal,
            metrics,
            auth,
            mtls,
            body_limit: args.body_limit,
            planner: Some(handle),
        });
        let router = http::router(state);
        let listener = std::net::TcpListener::bind(args.listen)
            .with_context(|| format!("listen on {}", args.listen))?;
        tracing::info!(address = %args.listen, tls = tls.is_some(), mtls, "greenplum-remediator listening");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let read_timeout = args.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT);
        http::serve(listener, router, tls, read_timeout, shutdown)
            .await
            .with_context(|| format!("serve on {}", args.listen))
    })
}

fn client_agent(client: &ClientArgs) -> Result<(ureq::Agent, Option<String>)> {
    let token = match &client.token_file {
        Some(path) => {
            Some(String::from_utf8(read_secret(path)?).context("token file is not UTF-8")?)
        }
        None => None,
    };
    let mut builder = ureq::AgentBuilder::new().timeout(Duration::from_secs(30));
    if let Some(config) = client_tls(&client.tls)? {
        builder = builder.tls_config(Arc::new(config));
    }
    Ok((builder.build(), token))
}

/// The CLI's TLS configuration when any `--tls.*` flag is given (otherwise ureq's default:
/// webpki roots, no client certificate).
fn client_tls(args: &ClientTlsArgs) -> Result<Option<rustls::ClientConfig>> {
    let identity = match (&args.cert, &args.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => bail!("--tls.cert-file and --tls.key-file go together"),
    };
    if args.ca.is_none() && identity.is_none() {
        return Ok(None);
    }
    let config = tls::client_config(args.ca.as_deref(), identity).context("configure TLS")?;
    Ok(Some(config))
}

fn request(
    client: &ClientArgs,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let (agent, token) = client_agent(client)?;
    let url = format!("{}{path}", client.url.trim_end_matches('/'));
    let mut req = agent.request(method, &url);
    if let Some(token) = token {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    let response = match body {
        Some(body) => req.send_json(body),
        None => req.call(),
    };
    match response {
        Ok(r) => r.into_json().context("decode the API's answer"),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            bail!("{method} {url}: HTTP {code}: {text}")
        }
        Err(e) => bail!("{method} {url}: {e}"),
    }
}

fn print(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn actions(command: ActionsCommand) -> Result<()> {
    let decision = |client: &ClientArgs, reason: &str| json!({"who": client.who, "why": reason});
    let answer = match command {
        ActionsCommand::List { client, state } => {
            let client = &client;
            let path = match state {
                Some(s) => format!("/api/v1/actions?state={s}"),
                None => "/api/v1/actions".to_string(),
            };
            let answer = request(client, "GET", &path, None)?;
            for action in answer["actions"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    action["id"],
                    action["state"].as_str().unwrap_or("?"),
                    action["cluster"].as_str().unwrap_or("?"),
                    action["action"].as_str().unwrap_or("?"),
                    action["targets"],
                    action["created_at"].as_str().unwrap_or("?"),
                );
            }
            return Ok(());
        }
        ActionsCommand::Show { client, id } => {
            request(&client, "GET", &format!("/api/v1/actions/{id}"), None)?
        }
        ActionsCommand::Approve { client, id, reason } => request(
            &client,
            "POST",
            &format!("/api/v1/actions/{id}/approve"),
            Some(decision(&client, &reason)),
        )?,
        ActionsCommand::Reject { client, id, reason } => request(
            &client,
            "POST",
            &format!("/api/v1/actions/{id}/reject"),
            Some(decision(&client, &reason)),
        )?,
    };
    print(&answer)
}

fn control(client: &ClientArgs, path: &str, reason: &str, cluster: Option<String>) -> Result<()> {
    let mut body = json!({"who": client.who, "why": reason});
    if let Some(cluster) = cluster {
        body["cluster"] = cluster.into();
    }
    print(&request(client, "POST", path, Some(body))?)
}
