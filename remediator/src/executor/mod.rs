//! Running the tools: `local` (cleared environment plus an allowlist) or `ssh` (fixed argv
//! prefix, BatchMode). Never a local shell.
//!
//! Output goes to a file, not a pipe: if the remediator dies, a pipe would break and
//! SIGPIPE could kill `gprecoverseg` midway, which forces a full recovery next time. The
//! child also gets its own process group so a signal to the remediator does not reach it.
//! Commands are never killed: an overdue command is reported, and after a restart it is
//! re-attached by pid.

pub mod local;
pub mod ssh;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Child;

pub use local::LocalExecutor;
pub use ssh::SshExecutor;

/// Bytes of command output kept in the journal (head and tail).
pub const OUTPUT_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot create run directory or log {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("empty argv")]
    EmptyArgv,
    #[error("{0}")]
    Check(String),
}

/// What to run. Every field comes from the policy or the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    /// Overrides on top of the executor's configured environment (e.g. `PGPORT` of the
    /// standby for `activate_standby`).
    pub env: BTreeMap<String, String>,
    /// Where it runs (ssh); ignored by `local`.
    pub host: Option<String>,
    pub log_path: PathBuf,
}

/// A started command.
#[derive(Debug)]
pub struct Started {
    pub pid: Option<u32>,
    pub pid_start_ticks: Option<u64>,
    /// The argv actually executed (with the ssh prefix).
    pub argv: Vec<String>,
    pub child: Option<Child>,
}

#[async_trait]
pub trait Executor: Send + Sync {
    async fn start(&self, spec: &CommandSpec) -> Result<Started, ExecError>;
    /// Whether a path exists on the host (`None`: where commands run).
    async fn path_exists(&self, host: Option<&str>, path: &str) -> Result<bool, ExecError>;
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks since boot. Together with the pid
/// it identifies a process across pid reuse.
pub fn pid_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This machine's host name, recorded with every execution so a replica elsewhere knows
/// that the pid is not one it can check.
pub fn this_host() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Whether the process we started is still running (and is still the same process).
pub fn still_running(pid: u32, start_ticks: Option<u64>) -> bool {
    match (pid_start_ticks(pid), start_ticks) {
        (Some(now), Some(then)) => now == then && !is_zombie(pid),
        (Some(_), None) => !is_zombie(pid),
        (None, _) => false,
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 1..].to_string();
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(false)
}

/// Waits for a started command: our child directly, or a re-attached pid by polling.
/// Returns the exit code when it is known.
pub async fn wait(started: &mut Started, poll: Duration) -> Option<i32> {
    if let Some(child) = started.child.as_mut() {
        return match child.wait().await {
            Ok(status) => status.code(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot wait for command; polling its pid");
                started.child = None;
                wait_pid(started.pid, started.pid_start_ticks, poll).await
            }
        };
    }
    wait_pid(started.pid, started.pid_start_ticks, poll).await
}

async fn wait_pid(pid: Option<u32>, ticks: Option<u64>, poll: Duration) -> Option<i32> {
    if let Some(pid) = pid {
        while still_running(pid, ticks) {
            tokio::time::sleep(poll).await;
        }
    }
    None
}

pub(crate) fn open_log(path: &Path) -> Result<std::fs::File, ExecError> {
    let err = |source| ExecError::Log {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)
}

/// The output kept in the journal: all of it when small, else its head and tail.
pub fn bounded_output(path: &Path) -> String {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return format!("<output unavailable: {e}>"),
    };
    if bytes.len() <= OUTPUT_LIMIT {
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let half = OUTPUT_LIMIT / 2;
    format!(
        "{}\n<... {} bytes omitted ...>\n{}",
        String::from_utf8_lossy(&bytes[..half]),
        bytes.len() - 2 * half,
        String::from_utf8_lossy(&bytes[bytes.len() - half..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_bounded_head_and_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.log");
        let mut text = "a".repeat(OUTPUT_LIMIT);
        text.push_str(&"z".repeat(100));
        std::fs::write(&path, &text).expect("write");
        let kept = bounded_output(&path);
        assert!(kept.len() < text.len());
        assert!(kept.starts_with('a') && kept.ends_with('z'));
        assert!(kept.contains("100 bytes omitted"));
        std::fs::write(&path, "short").expect("write");
        assert_eq!(bounded_output(&path), "short");
    }

    #[test]
    fn our_own_process_is_running_and_identified() {
        let pid = std::process::id();
        let ticks = pid_start_ticks(pid);
        assert!(ticks.is_some());
        assert!(still_running(pid, ticks));
        assert!(!still_running(pid, ticks.map(|t| t + 1)));
    }
}
