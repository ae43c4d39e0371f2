//! The lab's persistent state (`lab.json` in the lab dir): the static layout of every
//! instance and which coordinator currently acts. Roles, modes and statuses are NOT here:
//! the coordinator's catalog is their only source of truth, as in Greenplum.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{LabConfig, MirrorLayout};
use crate::error::{invalid, Context, Result};

pub const STATE_FILE: &str = "lab.json";

/// One PostgreSQL server of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub dbid: i16,
    pub content: i16,
    /// `p` or `m`: the role given at creation (`preferred_role` in the catalog).
    pub preferred_role: char,
    pub host: String,
    pub port: u16,
    pub datadir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabKind {
    Cluster,
    CatalogOnly,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub kind: LabKind,
    pub config: LabConfig,
    pub base_port: u16,
    /// Every instance ever created (a removed standby is dropped from the list).
    pub instances: Vec<Instance>,
    /// dbid of the coordinator that currently acts (changes with `gpactivatestandby`).
    pub acting_coordinator: i16,
    /// Synthetic segment count of a catalog-only lab.
    #[serde(default)]
    pub catalog_segments: u32,
    /// Data directories no longer part of the cluster (an old coordinator after
    /// `gpactivatestandby`) that `down` still stops.
    #[serde(default)]
    pub retired: Vec<PathBuf>,
}

impl LabState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = fs::read_to_string(&path).ctx(|| {
            format!(
                "reading lab state {} (is there a lab in this dir?)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).ctx(|| format!("parsing lab state {}", path.display()))
    }

    /// Writes atomically (temp file + rename) so a reader never sees half a file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).ctx(|| "serializing lab state".into())?;
        fs::write(&tmp, text).ctx(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).ctx(|| format!("renaming {} into place", tmp.display()))
    }

    pub fn instance(&self, dbid: i16) -> Result<&Instance> {
        match self.instances.iter().find(|i| i.dbid == dbid) {
            Some(i) => Ok(i),
            None => invalid(format!("no instance with dbid {dbid} in the lab state")),
        }
    }

    pub fn coordinator(&self) -> Result<&Instance> {
        self.instance(self.acting_coordinator)
    }

    /// The configured standby coordinator, if any (content -1, not the acting one).
    pub fn standby(&self) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.content == -1 && i.dbid != self.acting_coordinator)
    }

    pub fn segments(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(|i| i.content >= 0)
    }

    pub fn by_datadir(&self, dir: &Path) -> Option<&Instance> {
        let want = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        self.instances
            .iter()
            .find(|i| fs::canonicalize(&i.datadir).unwrap_or_else(|_| i.datadir.clone()) == want)
    }
}

/// Host name of segment host `i` (0-based): `sdw1`, `sdw2`, ...
pub fn segment_host(i: u16) -> String {
    format!("sdw{}", i + 1)
}

/// The instances of a fresh cluster, numbered like `gpinitsystem` numbers them: coordinator
/// dbid 1, primaries 2..=N+1, mirrors N+2..=2N+1, standby 2N+2. Ports: coordinator P, standby
/// P+1, primaries P+2.., mirrors after them.
pub fn initial_layout(config: &LabConfig, base_port: u16, data: &Path) -> Vec<Instance> {
    let n = config.contents;
    let hosts = config.hosts.max(1);
    let mut out = vec![Instance {
        dbid: 1,
        content: -1,
        preferred_role: 'p',
        host: "cdw".into(),
        port: base_port,
        datadir: data.join("qddir").join("demoDataDir-1"),
    }];
    for c in 0..n {
        out.push(Instance {
            dbid: 2 + c as i16,
            content: c as i16,
            preferred_role: 'p',
            host: segment_host(primary_host(c, n, hosts)),
            port: base_port + 2 + c,
            datadir: data.join("primary").join(format!("gpseg{c}")),
        });
    }
    for c in 0..n {
        out.push(Instance {
            dbid: 2 + (n + c) as i16,
            content: c as i16,
            preferred_role: 'm',
            host: segment_host(mirror_host(c, n, hosts, config.mirrors)),
            port: base_port + 2 + n + c,
            datadir: data.join("mirror").join(format!("gpseg{c}")),
        });
    }
    if config.standby {
        out.push(Instance {
            dbid: 2 + 2 * n as i16,
            content: -1,
            preferred_role: 'm',
            host: "scdw".into(),
            port: base_port + 1,
            datadir: data.join("standby"),
        });
    }
    out
}

/// Primaries are dealt to hosts in contiguous blocks, like gpinitsystem's host list order.
fn primary_host(content: u16, contents: u16, hosts: u16) -> u16 {
    let per_host = contents.div_ceil(hosts);
    (content / per_host).min(hosts - 1)
}

fn mirror_host(content: u16, contents: u16, hosts: u16, layout: MirrorLayout) -> u16 {
    let home = primary_host(content, contents, hosts);
    if hosts == 1 {
        return home;
    }
    match layout {
        MirrorLayout::Group => (home + 1) % hosts,
        MirrorLayout::Spread => {
            // k-th primary of its host goes to the k-th other host, round-robin.
            let per_host = contents.div_ceil(hosts);
            let k = content % per_host;
            let step = 1 + k % (hosts - 1);
            (home + step) % hosts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_demo_cluster_numbering() {
        let cfg = LabConfig {
            hosts: 1,
            ..LabConfig::default()
        };
        let l = initial_layout(&cfg, 6000, Path::new("/d"));
        let ports: Vec<_> = l.iter().map(|i| (i.dbid, i.port)).collect();
        assert_eq!(
            ports,
            vec![
                (1, 6000),
                (2, 6002),
                (3, 6003),
                (4, 6004),
                (5, 6005),
                (6, 6006),
                (7, 6007),
                (8, 6001)
            ]
        );
        assert!(l.iter().skip(1).take(6).all(|i| i.host == "sdw1"));
    }

    #[test]
    fn group_mirrors_go_to_the_next_host_and_spread_ones_round_robin() {
        let mut cfg = LabConfig {
            contents: 4,
            hosts: 2,
            ..LabConfig::default()
        };
        let l = initial_layout(&cfg, 6000, Path::new("/d"));
        let mirror_hosts: Vec<_> = l
            .iter()
            .filter(|i| i.preferred_role == 'm' && i.content >= 0)
            .map(|i| i.host.clone())
            .collect();
        assert_eq!(mirror_hosts, vec!["sdw2", "sdw2", "sdw1", "sdw1"]);
        cfg.hosts = 3;
        cfg.contents = 6;
        cfg.mirrors = MirrorLayout::Spread;
        let l = initial_layout(&cfg, 6000, Path::new("/d"));
        for i in l
            .iter()
            .filter(|i| i.preferred_role == 'm' && i.content >= 0)
        {
            let p = l
                .iter()
                .find(|p| p.content == i.content && p.preferred_role == 'p')
                .map(|p| p.host.clone());
            assert_ne!(
                Some(i.host.clone()),
                p,
                "mirror of content {} shares its primary's host",
                i.content
            );
        }
        let sdw1_mirrors: Vec<_> = l
            .iter()
            .filter(|i| i.preferred_role == 'm' && i.content >= 0 && i.content < 2)
            .map(|i| i.host.clone())
            .collect();
        assert_eq!(sdw1_mirrors, vec!["sdw2", "sdw3"]);
    }
}
