//! Where the planner reads the cluster from. A trait so lanes can be driven by scripted
//! snapshots in tests; the real one is the catalog crate's `ClusterReader`.

use async_trait::async_trait;
use greenplum_catalog::Snapshot;

#[async_trait]
pub trait CatalogSource: Send {
    /// A fresh read. Never fails: failures are `Err` sources inside the snapshot.
    async fn snapshot(&mut self) -> Snapshot;
    /// Asks FTS to probe now (where permitted); `Ok(false)` when it was not possible.
    async fn request_fts_probe(&mut self) -> Result<bool, String>;
}
