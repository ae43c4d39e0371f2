//! Finds the project's binaries: `GREENPLUM_BIN_DIR` when set, otherwise builds them with
//! cargo from the repository root (release for real runs, debug for the smoke run).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const EXPORTER: &str = "greenplum-exporter";
pub const REMEDIATOR: &str = "greenplum-remediator";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// The directory holding `greenplum-exporter` and `greenplum-remediator`.
pub fn bin_dir(profile: Profile) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("GREENPLUM_BIN_DIR") {
        let dir = PathBuf::from(dir);
        for name in [EXPORTER, REMEDIATOR] {
            if !dir.join(name).is_file() {
                bail!("GREENPLUM_BIN_DIR={} has no {name}", dir.display());
            }
        }
        return Ok(dir);
    }
    let root = repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "-p", EXPORTER, "-p", REMEDIATOR]);
    if profile == Profile::Release {
        cargo.arg("--release");
    }
    eprintln!(
        "building {EXPORTER} and {REMEDIATOR} ({}) into {}",
        profile.dir(),
        target.display()
    );
    let status = cargo
        .status()
        .with_context(|| format!("running cargo build in {}", root.display()))?;
    if !status.success() {
        bail!("cargo build of {EXPORTER} and {REMEDIATOR} failed ({status})");
    }
    Ok(target.join(profile.dir()))
}

/// The repository root: two levels above this crate.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
