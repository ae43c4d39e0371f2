//! Command line: `greenplum-remediator serve|check-policy|actions|pause|resume|breaker|
//! list-metrics` and their flags. Parsing only: [`crate::run`] acts on them and
//! [`crate::client`] speaks to the API for the operator subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::http::DEFAULT_BODY_LIMIT;
use crate::policy::PolicyDuration;
use crate::tls::TlsFiles;

#[derive(Parser)]
#[command(
    name = "greenplum-remediator",
    version,
    about = "Alert-driven, policy-approved healing of Greenplum clusters"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum ActionsCommand {
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
pub enum BreakerCommand {
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
pub struct ServeArgs {
    #[arg(long = "policy", env = "GREENPLUM_REMEDIATOR_POLICY")]
    pub policy: PathBuf,
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9298")]
    pub listen: SocketAddr,
    #[arg(
        long = "journal.path",
        default_value = "/var/lib/greenplum-remediator/journal.db"
    )]
    pub journal: PathBuf,
    /// A PostgreSQL journal shared by replicas (`postgres://USER@HOST:PORT/DB`, or libpq
    /// key=value), instead of `--journal.path`. No password here (argv is public): it comes
    /// from --journal.password-file or GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD.
    #[arg(long = "journal.url", env = "GREENPLUM_REMEDIATOR_JOURNAL_URL")]
    pub journal_url: Option<String>,
    #[arg(
        long = "journal.password-file",
        env = "GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD_FILE"
    )]
    pub journal_password_file: Option<PathBuf>,
    /// How often undecided events are re-read from the journal (work left by a restart or
    /// received by another replica) and approvals expired.
    #[arg(long = "planner.sweep-interval", default_value = "30s", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// Where command output is written while it runs (default: `runs/` next to the journal).
    #[arg(long = "run-dir")]
    pub run_dir: Option<PathBuf>,
    #[arg(long = "web.max-body-bytes", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// How long a client may take to send its request headers, and then its body; a slower
    /// connection is closed (408 for a body). Default 10s.
    #[arg(long = "web.read-timeout", value_parser = parse_duration)]
    pub read_timeout: Option<Duration>,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Serve a non-loopback address without authentication (never in production).
    #[arg(long = "insecure-no-auth")]
    pub insecure_no_auth: bool,
    /// Revision reported by greenplum_remediator_build_info.
    #[arg(
        long = "build.revision",
        env = "GREENPLUM_REMEDIATOR_REVISION",
        default_value = "unknown"
    )]
    pub revision: String,
}

#[derive(Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this PEM certificate chain (with --web.tls-key-file).
    #[arg(long = "web.tls-cert-file")]
    pub cert: Option<PathBuf>,
    #[arg(long = "web.tls-key-file")]
    pub key: Option<PathBuf>,
    /// Require client certificates signed by these CAs (mTLS); a verified client is
    /// authenticated.
    #[arg(long = "web.tls-client-ca-file")]
    pub client_ca: Option<PathBuf>,
}

impl TlsArgs {
    pub fn files(&self) -> Result<Option<TlsFiles>> {
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
pub struct AuthArgs {
    /// File holding the bearer token Alertmanager sends (and, without
    /// --auth.operators-file, the CLI).
    #[arg(long = "auth.token-file", env = "GREENPLUM_REMEDIATOR_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Operators, one `name token` per line: approve, reject, pause, resume and breaker reset
    /// then need an operator's token, and the journal records that operator's name.
    #[arg(
        long = "auth.operators-file",
        env = "GREENPLUM_REMEDIATOR_OPERATORS_FILE"
    )]
    pub operators_file: Option<PathBuf>,
    /// Also name an operator by a verified client certificate (mTLS) whose subject CN is
    /// their name in --auth.operators-file; no token needed then. Needs
    /// --web.tls-client-ca-file, and a CA that issues each CN to that person only.
    #[arg(long = "auth.operator-client-cert")]
    pub operator_client_cert: bool,
    #[arg(long = "auth.basic-user")]
    pub basic_user: Option<String>,
    #[arg(long = "auth.basic-password-file")]
    pub basic_password_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct ClientArgs {
    #[arg(
        long = "url",
        env = "GREENPLUM_REMEDIATOR_URL",
        default_value = "http://127.0.0.1:9298"
    )]
    pub url: String,
    /// The token to send: an operator's (from the server's --auth.operators-file) for
    /// approve, reject, pause, resume and breaker reset.
    #[arg(long = "auth.token-file", env = "GREENPLUM_REMEDIATOR_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Recorded as who decided (default: $USER) when the server has no operators file; with
    /// one, the token names the operator and this is only a note.
    #[arg(long = "who", env = "USER", default_value = "unknown")]
    pub who: String,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

// HTTPS to the API (`--url https://...`). A plain comment: a doc comment on a flattened
// Args struct becomes the subcommand's about text.
#[derive(Args)]
pub struct ClientTlsArgs {
    /// PEM CA certificates that sign the server's certificate (default: the system's web
    /// roots, webpki-roots).
    #[arg(long = "tls.ca-file")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for a server that requires mTLS.
    #[arg(long = "tls.cert-file")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = "tls.key-file")]
    pub key: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    PolicyDuration::parse(text).map(|d| d.0)
}
