//! What a lab looks like: flavor, size, layout and FTS timing.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which Greenplum-family product the coordinator's catalog imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// Greenplum 6 (PostgreSQL 9.4 base): `*_location` columns, `*_xlog_*` functions, `desc`.
    Gp6,
    /// Greenplum 7 (PostgreSQL 12 base): `*_lsn` columns, `*_lag` intervals, `description`.
    Gp7,
    /// Apache Cloudberry 2 (PostgreSQL 14 base): as gp7, plus `warehouseid`.
    Cloudberry,
}

impl Flavor {
    /// The string an unqualified `SELECT version()` answers.
    pub fn version_string(self) -> &'static str {
        match self {
            Flavor::Gp6 => "PostgreSQL 9.4.26 (Greenplum Database 6.24.3 build commit:25d3498a400ca5230e81abb94861f23389315213) on x86_64-unknown-linux-gnu, compiled by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit compiled on Nov 21 2026 16:00:24",
            Flavor::Gp7 => "PostgreSQL 12.12 (Greenplum Database 7.1.0 build commit:e7c2b1f14bb42a1018ac57d14f4436880e0a0515) on x86_64-pc-linux-gnu, compiled by gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-18), 64-bit compiled on Jan 19 2024 06:49:03 Bhuvnesh C.",
            Flavor::Cloudberry => "PostgreSQL 14.4 (Apache Cloudberry 2.0.0-incubating build 1) on x86_64-pc-linux-gnu, compiled by gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3), 64-bit compiled on Jun 10 2025 10:00:00",
        }
    }

    /// The product version the tool stand-ins print as "local Greenplum Version".
    pub fn local_version(self) -> &'static str {
        match self {
            Flavor::Gp6 => "postgres (Greenplum Database) 6.24.3 build commit:25d3498a400ca5230e81abb94861f23389315213",
            Flavor::Gp7 => "postgres (Greenplum Database) 7.1.0 build commit:e7c2b1f14bb42a1018ac57d14f4436880e0a0515",
            Flavor::Cloudberry => "postgres (Apache Cloudberry) 2.0.0-incubating build 1",
        }
    }

    /// GP6 keeps the pre-PostgreSQL-10 names (`xlog`, `location`).
    pub fn is_gp6(self) -> bool {
        self == Flavor::Gp6
    }

    /// Name of the free-text column of `gp_configuration_history`.
    pub fn history_column(self) -> &'static str {
        if self.is_gp6() {
            "\"desc\""
        } else {
            "description"
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Gp6 => "gp6",
            Flavor::Gp7 => "gp7",
            Flavor::Cloudberry => "cloudberry",
        })
    }
}

/// Where the mirrors of a host's primaries go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MirrorLayout {
    /// All mirrors of host i's primaries on host i+1.
    Group,
    /// Mirrors of host i's primaries round-robin over the other hosts.
    Spread,
}

/// Everything `Lab::up` needs to know. `Default` is a 3-content gp6 cluster with a standby.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabConfig {
    pub contents: u16,
    pub flavor: Flavor,
    pub standby: bool,
    pub mirrors: MirrorLayout,
    pub hosts: u16,
    /// Coordinator port; the others follow it. `None` picks a free range.
    pub base_port: Option<u16>,
    /// Seconds between FTS probes (the real `gp_fts_probe_interval` is 60).
    pub fts_interval: Duration,
    /// How long a mirror may be gone before FTS marks it down
    /// (the real `gp_fts_mark_mirror_down_grace_period` is 30 s).
    pub mirror_grace: Duration,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            contents: 3,
            flavor: Flavor::Gp6,
            standby: true,
            mirrors: MirrorLayout::Group,
            hosts: 3,
            base_port: None,
            fts_interval: Duration::from_secs(60),
            mirror_grace: Duration::from_secs(30),
        }
    }
}

impl LabConfig {
    /// A config for tests: fast FTS (1 s) and a short mirror grace period (3 s).
    pub fn for_tests(contents: u16, flavor: Flavor) -> Self {
        LabConfig {
            contents,
            flavor,
            hosts: contents.clamp(1, 3),
            fts_interval: Duration::from_secs(1),
            mirror_grace: Duration::from_secs(3),
            ..LabConfig::default()
        }
    }

    /// Ports used: coordinator, standby, one per primary, one per mirror.
    pub fn port_count(&self) -> u16 {
        2 + 2 * self.contents
    }

    pub fn validate(&self) -> crate::Result<()> {
        if self.contents == 0 || self.contents > 64 {
            return crate::error::invalid(format!(
                "--contents must be between 1 and 64 (got {})",
                self.contents
            ));
        }
        if self.hosts == 0 || self.hosts > self.contents.max(1) * 2 {
            return crate::error::invalid(format!(
                "--hosts must be between 1 and {} (got {})",
                self.contents * 2,
                self.hosts
            ));
        }
        if self.fts_interval.is_zero() {
            return crate::error::invalid("--fts-interval must be at least 1 second");
        }
        if let Some(p) = self.base_port {
            if u32::from(p) + u32::from(self.port_count()) > 65535 || p < 1024 {
                return crate::error::invalid(format!(
                    "--base-port {p} leaves no room for the lab's ports"
                ));
            }
        }
        Ok(())
    }
}
