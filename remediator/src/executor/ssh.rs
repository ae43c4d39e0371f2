//! Runs the tools on a remote host through a fixed ssh argv prefix.
//!
//! ssh hands the remote command to the remote user's shell, so every word is single-quoted
//! here. Every word comes from the policy or the catalog; none from an alert.

use std::collections::BTreeMap;
use std::process::Stdio;

use async_trait::async_trait;
use tokio::process::Command;

use super::{open_log, pid_start_ticks, CommandSpec, ExecError, Executor, Started};
use crate::policy::ENV_ALLOWLIST;

pub struct SshExecutor {
    prefix: Vec<String>,
    user: String,
    env: BTreeMap<String, String>,
}

/// POSIX single quoting: the result is one literal word for any input.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl SshExecutor {
    pub fn new(prefix: &[String], user: &str, env: &BTreeMap<String, String>) -> Self {
        let mut env = env.clone();
        env.retain(|name, _| ENV_ALLOWLIST.contains(&name.as_str()));
        SshExecutor {
            prefix: prefix.to_vec(),
            user: user.to_string(),
            env,
        }
    }

    /// The full local argv: prefix, BatchMode, user, host, then the quoted remote command.
    pub fn argv(
        &self,
        host: &str,
        remote: &[String],
        extra_env: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut env = self.env.clone();
        env.extend(extra_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.retain(|name, _| ENV_ALLOWLIST.contains(&name.as_str()));
        let mut words = vec!["env".to_string()];
        words.extend(env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        words.extend(remote.iter().map(|w| quote(w)));
        let mut argv = self.prefix.clone();
        argv.extend([
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-l".to_string(),
            self.user.clone(),
            // `--` ends ssh's options: a host name can never be read as an option.
            "--".to_string(),
            host.to_string(),
            words.join(" "),
        ]);
        argv
    }
}

#[async_trait]
impl Executor for SshExecutor {
    async fn start(&self, spec: &CommandSpec) -> Result<Started, ExecError> {
        let host = spec
            .host
            .as_deref()
            .ok_or_else(|| ExecError::Check("ssh executor needs a host from the catalog".into()))?;
        let argv = self.argv(host, &spec.argv, &spec.env);
        let (program, args) = argv.split_first().ok_or(ExecError::EmptyArgv)?;
        let log = open_log(&spec.log_path)?;
        let log_err = log.try_clone().map_err(|source| ExecError::Log {
            path: spec.log_path.display().to_string(),
            source,
        })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        if let Ok(home) = std::env::var("HOME") {
            command.env("HOME", home);
        }
        let child = command.spawn().map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id();
        Ok(Started {
            pid,
            pid_start_ticks: pid.and_then(pid_start_ticks),
            argv,
            child: Some(child),
        })
    }

    async fn path_exists(&self, host: Option<&str>, path: &str) -> Result<bool, ExecError> {
        let host = host
            .ok_or_else(|| ExecError::Check("ssh executor needs a host from the catalog".into()))?;
        let argv = self.argv(
            host,
            &["test".into(), "-e".into(), path.into()],
            &BTreeMap::new(),
        );
        let (program, args) = argv.split_first().ok_or(ExecError::EmptyArgv)?;
        let status = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .map_err(|source| ExecError::Spawn {
                program: program.clone(),
                source,
            })?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            other => Err(ExecError::Check(format!(
                "cannot check {path} on {host}: ssh exited with {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_fixed_batch_mode_and_quoted() {
        let executor = SshExecutor::new(
            &["/usr/bin/ssh".into(), "-i".into(), "/etc/key".into()],
            "gpadmin",
            &BTreeMap::from([
                ("GPHOME".to_string(), "/usr/local/gp db".to_string()),
                ("LD_PRELOAD".to_string(), "/x.so".to_string()),
            ]),
        );
        let argv = executor.argv(
            "mdw",
            &["gprecoverseg".into(), "-a".into()],
            &BTreeMap::from([("PGPORT".to_string(), "5432".to_string())]),
        );
        assert_eq!(
            argv,
            [
                "/usr/bin/ssh",
                "-i",
                "/etc/key",
                "-o",
                "BatchMode=yes",
                "-l",
                "gpadmin",
                "--",
                "mdw",
                "env 'GPHOME=/usr/local/gp db' 'PGPORT=5432' 'gprecoverseg' '-a'"
            ]
        );
    }

    #[test]
    fn quoting_neutralises_shell_syntax() {
        assert_eq!(quote("a'b; rm -rf /"), r"'a'\''b; rm -rf /'");
        assert_eq!(quote("$(id)"), "'$(id)'");
    }
}
