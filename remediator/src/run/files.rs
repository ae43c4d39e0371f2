//! The files the service keeps, and the journal it opens: none readable by every user (the
//! journal holds alert bodies, host names and tool output), and no journal password on the
//! command line.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::auth::read_secret;
use crate::cli::ServeArgs;
use crate::journal::{Journal, PostgresJournal, SqliteJournal};

/// Files the service creates are not for every user: the journal holds alert bodies, host
/// names and tool output. Group-readable, so an operators group can read the journal.
pub(super) fn restrict_umask() {
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
pub(super) fn prepare_run_dir(path: &Path) -> Result<()> {
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

/// Environment variable holding the PostgreSQL journal's password (never a flag).
const JOURNAL_PASSWORD_ENV: &str = "GREENPLUM_REMEDIATOR_JOURNAL_PASSWORD";

pub(super) fn open_journal(args: &ServeArgs) -> Result<Arc<dyn Journal>> {
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
