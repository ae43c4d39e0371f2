//! The real backends: the catalog crate's `ClusterReader` and the configured executor.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use greenplum_catalog::reader::{ClusterReader, ReaderConfig};
use greenplum_catalog::{ConnectionDefaults, Snapshot};

use crate::executor::{Executor, LocalExecutor, SshExecutor};
use crate::planner::Backends;
use crate::policy::{self, Cluster, Policy};
use crate::source::CatalogSource;

/// The name of the remediator's catalog sessions (`pg_stat_activity.application_name`).
pub const APPLICATION_NAME: &str = "greenplum-remediator";

struct ReaderSource(ClusterReader);

#[async_trait]
impl CatalogSource for ReaderSource {
    async fn snapshot(&mut self) -> Snapshot {
        self.0.snapshot().await
    }

    async fn request_fts_probe(&mut self) -> Result<bool, String> {
        self.0.request_fts_probe().await.map_err(|e| e.to_string())
    }
}

pub struct RealBackends {
    /// Per cluster name: endpoints, login, TLS and timeouts from the policy.
    configs: BTreeMap<String, ReaderConfig>,
}

impl RealBackends {
    /// Builds every cluster's reader config now (its password file read, its endpoints
    /// parsed), so a missing file stops the start-up with a clear error instead of failing
    /// reads later.
    pub fn new(policy: &Policy) -> anyhow::Result<Self> {
        let defaults = ConnectionDefaults {
            application_name: APPLICATION_NAME.into(),
            connect_timeout: None,
            statement_timeout: None,
        };
        let mut configs = BTreeMap::new();
        for cluster in policy.clusters.iter().map(|c| &c.value) {
            let config = cluster
                .connection
                .reader_config(&defaults, &policy.base_dir)
                .with_context(|| format!("cluster {} of the policy", cluster.name))?;
            configs.insert(cluster.name.clone(), config);
        }
        Ok(RealBackends { configs })
    }

    /// How the catalog of cluster `name` is read (endpoints, TLS, timeouts).
    pub fn reader_config(&self, name: &str) -> Option<&ReaderConfig> {
        self.configs.get(name)
    }
}

impl Backends for RealBackends {
    fn source(&self, cluster: &Cluster) -> Box<dyn CatalogSource> {
        let config = self.configs.get(&cluster.name).cloned().unwrap_or_else(|| {
            // Lanes are made from the same policy; a reader without endpoints only reports
            // that nothing is configured.
            tracing::error!(cluster = %cluster.name, "no reader config for this cluster");
            ReaderConfig::new(
                Vec::new(),
                &cluster.connection.user,
                &cluster.connection.database,
            )
        });
        Box::new(ReaderSource(ClusterReader::new(config)))
    }

    fn executor(&self, cluster: &Cluster) -> Arc<dyn Executor> {
        match &cluster.executor {
            policy::Executor::Local(local) => {
                Arc::new(LocalExecutor::new(&local.env, &local.pass_env))
            }
            policy::Executor::Ssh(ssh) => {
                Arc::new(SshExecutor::new(&ssh.argv_prefix, &ssh.user, &ssh.env))
            }
        }
    }
}
