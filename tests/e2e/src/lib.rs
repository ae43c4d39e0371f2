//! The end-to-end harness: real Prometheus and Alertmanager processes (Debian packages)
//! around the lab, the exporter and the remediator, each held by a guard that stops it when
//! the test or demo ends, even on failure.

pub mod alertmanager;
pub mod process;
pub mod prometheus;

use std::path::PathBuf;

/// The repository root (rule files, dashboards, policies live there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}
