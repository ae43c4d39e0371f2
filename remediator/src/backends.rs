//! The real backends: the catalog crate's `ClusterReader` and the configured executor.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use greenplum_catalog::reader::{ClusterReader, Endpoint, ReaderConfig};
use greenplum_catalog::Snapshot;

use crate::auth::read_secret;
use crate::executor::{Executor, LocalExecutor, SshExecutor};
use crate::planner::Backends;
use crate::policy::{self, Cluster, Policy};
use crate::source::CatalogSource;

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
    passwords: BTreeMap<String, String>,
}

impl RealBackends {
    /// Reads every cluster's password file now, so a missing file stops the start-up with
    /// a clear error instead of failing reads later.
    pub fn new(policy: &Policy) -> anyhow::Result<Self> {
        let mut passwords = BTreeMap::new();
        for cluster in policy.clusters.iter().map(|c| &c.value) {
            if let Some(path) = &cluster.password_file {
                let secret = read_secret(std::path::Path::new(path))?;
                let text = String::from_utf8(secret).map_err(|_| {
                    anyhow::anyhow!(
                        "password file {path} of cluster {} is not UTF-8",
                        cluster.name
                    )
                })?;
                passwords.insert(cluster.name.clone(), text);
            }
        }
        Ok(RealBackends { passwords })
    }
}

impl Backends for RealBackends {
    fn source(&self, cluster: &Cluster) -> Box<dyn CatalogSource> {
        let endpoints = cluster
            .coordinator
            .iter()
            .map(|e| Endpoint::new(e.host.clone(), e.port))
            .collect();
        let mut config =
            ReaderConfig::new(endpoints, cluster.user.clone(), cluster.database.clone());
        config.application_name = "greenplum-remediator".into();
        config.password = self.passwords.get(&cluster.name).cloned();
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
