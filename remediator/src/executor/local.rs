//! Runs the tools on this host with a cleared environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tokio::process::Command;

use super::{open_log, pid_start_ticks, CommandSpec, ExecError, Executor, Started};
use crate::policy::ENV_ALLOWLIST;

pub struct LocalExecutor {
    env: BTreeMap<String, String>,
}

impl LocalExecutor {
    /// `env` holds fixed values; `pass_env` names are copied from our own environment. Names
    /// outside the allowlist are dropped (the policy validation already refused them).
    pub fn new(env: &BTreeMap<String, String>, pass_env: &[String]) -> Self {
        let mut merged = BTreeMap::new();
        for name in pass_env {
            if let Ok(value) = std::env::var(name) {
                merged.insert(name.clone(), value);
            }
        }
        merged.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged.retain(|name, _| ENV_ALLOWLIST.contains(&name.as_str()));
        LocalExecutor { env: merged }
    }

    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}

#[async_trait]
impl Executor for LocalExecutor {
    async fn start(&self, spec: &CommandSpec) -> Result<Started, ExecError> {
        let (program, args) = spec.argv.split_first().ok_or(ExecError::EmptyArgv)?;
        let log = open_log(&spec.log_path)?;
        let log_err = log.try_clone().map_err(|source| ExecError::Log {
            path: spec.log_path.display().to_string(),
            source,
        })?;
        let mut env = self.env.clone();
        env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.retain(|name, _| ENV_ALLOWLIST.contains(&name.as_str()));
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Its own process group: a Ctrl-C or SIGTERM to our group never reaches it.
            .process_group(0)
            .kill_on_drop(false);
        let child = command.spawn().map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id();
        Ok(Started {
            pid,
            pid_start_ticks: pid.and_then(pid_start_ticks),
            argv: spec.argv.clone(),
            child: Some(child),
        })
    }

    async fn path_exists(&self, _host: Option<&str>, path: &str) -> Result<bool, ExecError> {
        Ok(Path::new(path).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn runs_with_a_cleared_environment_and_logs_to_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::env::set_var("GREENPLUM_REMEDIATOR_TEST_SECRET", "leak");
        let env = BTreeMap::from([("PGPORT".to_string(), "5432".to_string())]);
        let executor = LocalExecutor::new(&env, &["PATH".to_string()]);
        let spec = CommandSpec {
            argv: vec!["/usr/bin/env".into()],
            env: BTreeMap::from([
                ("PGPORT".to_string(), "6000".to_string()),
                ("LD_PRELOAD".to_string(), "/evil.so".to_string()),
            ]),
            host: None,
            log_path: dir.path().join("runs/1.log"),
        };
        let mut started = executor.start(&spec).await.expect("start");
        assert!(started.pid.is_some());
        let code = super::super::wait(&mut started, Duration::from_millis(50)).await;
        assert_eq!(code, Some(0));
        let output = std::fs::read_to_string(&spec.log_path).expect("log");
        assert!(output.contains("PGPORT=6000"), "{output}");
        assert!(output.contains("PATH="), "{output}");
        assert!(
            !output.contains("GREENPLUM_REMEDIATOR_TEST_SECRET"),
            "{output}"
        );
        assert!(!output.contains("LD_PRELOAD"), "{output}");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let executor = LocalExecutor::new(&BTreeMap::new(), &[]);
        let spec = CommandSpec {
            argv: vec!["/nonexistent/gprecoverseg".into()],
            env: BTreeMap::new(),
            host: None,
            log_path: dir.path().join("x.log"),
        };
        assert!(matches!(
            executor.start(&spec).await,
            Err(ExecError::Spawn { .. })
        ));
        assert!(executor
            .path_exists(None, dir.path().to_str().expect("utf8"))
            .await
            .expect("check"));
    }
}
