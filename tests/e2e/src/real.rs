//! A real Greenplum cluster for the tests whose truth is a real server, not the lab: the
//! assets in `../shared/greenplum-<version>/` (the server and its management tools, built from
//! the open sources, with `install` and `cluster` scripts; see their README). People who clone
//! the project do not have that folder: [`RealCluster::create`] then prints one skip line and
//! returns `None`, so the suite still passes for them.
//!
//! The cluster is made by the asset's `cluster create` and destroyed when the guard drops. Its
//! utilities refuse to run as root: they run as the asset's OS user through `su`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use gplab::SegmentRow;

use crate::process::wait_for;
use crate::repo_root;

/// A Greenplum version whose real server the shared folder may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealVersion {
    /// `greenplum-6.24.3`: PostgreSQL 9.4 base, WAL replication, `gp_request_fts_probe_scan()`.
    Gp6,
}

impl RealVersion {
    fn folder(self) -> &'static str {
        match self {
            RealVersion::Gp6 => "greenplum-6.24.3",
        }
    }

    /// The OS user the asset's `install` creates and its utilities run as.
    pub fn admin(self) -> &'static str {
        match self {
            RealVersion::Gp6 => "gpadmin",
        }
    }

    /// The database its `env.sh` sets (`PGDATABASE`).
    pub fn database(self) -> &'static str {
        match self {
            RealVersion::Gp6 => "postgres",
        }
    }
}

/// Where the shared assets are: `GREENPLUM_SHARED_DIR`, else `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("GREENPLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

/// Why a real cluster cannot be made here, or `None` when it can.
pub fn unavailable(version: RealVersion) -> Option<String> {
    let asset = shared_dir().join(version.folder());
    if !asset.join("install").is_file() {
        return Some(format!(
            "no Greenplum test asset at {} (set GREENPLUM_SHARED_DIR to the folder holding {})",
            asset.display(),
            version.folder()
        ));
    }
    if !nix::unistd::Uid::effective().is_root() {
        return Some(format!(
            "{} needs root to install and to run its utilities as {}",
            version.folder(),
            version.admin()
        ));
    }
    None
}

/// A running real cluster: coordinator, optional standby, `pairs` primary/mirror pairs.
pub struct RealCluster {
    version: RealVersion,
    asset: PathBuf,
    dir: PathBuf,
    port_base: u16,
    standby: bool,
}

impl RealCluster {
    /// Installs the asset (idempotent) and creates a cluster under a fresh directory, or
    /// prints `SKIP: ...` and returns `None` where the asset is absent.
    pub fn create(version: RealVersion, pairs: u16, standby: bool) -> Result<Option<RealCluster>> {
        if let Some(why) = unavailable(version) {
            println!("SKIP: real {}: {why}", version.folder());
            return Ok(None);
        }
        let asset = shared_dir().join(version.folder());
        run(Command::new(asset.join("install")), "install")?;
        let port_base = free_port_range(2 + 2 * pairs)?;
        // Under /tmp, not the test's temp dir: every parent must be searchable by the admin.
        let dir = PathBuf::from(format!("/tmp/gp-real-{}-{}", std::process::id(), port_base));
        let mut create = Command::new(asset.join("cluster"));
        create.args(["create", "--dir"]).arg(&dir).args([
            "--port-base",
            &port_base.to_string(),
            "--pairs",
            &pairs.to_string(),
        ]);
        if !standby {
            create.arg("--no-standby");
        }
        let cluster = RealCluster {
            version,
            asset,
            dir,
            port_base,
            standby,
        };
        // The guard exists before `create` runs, so a half-made cluster is destroyed too.
        run(create, "cluster create")?;
        Ok(Some(cluster))
    }

    pub fn version(&self) -> RealVersion {
        self.version
    }

    /// The directory holding the cluster's data directories and `env.sh`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn coordinator_port(&self) -> u16 {
        self.port_base
    }

    pub fn standby_port(&self) -> Option<u16> {
        self.standby.then_some(self.port_base + 1)
    }

    /// `127.0.0.1:port` of the coordinator, then of the standby.
    pub fn endpoints(&self) -> Vec<String> {
        std::iter::once(self.coordinator_port())
            .chain(self.standby_port())
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// The libpq environment that reaches it as the admin (trust from 127.0.0.1).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGUSER".into(), self.version.admin().into()),
            ("PGDATABASE".into(), self.version.database().into()),
        ]
    }

    /// A session as the admin on `port` (the acting coordinator's, usually).
    pub fn connect(&self, port: u16) -> Result<postgres::Client> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user(self.version.admin())
            .dbname(self.version.database())
            .connect_timeout(Duration::from_secs(5))
            .connect(postgres::NoTls)
            .with_context(|| format!("connecting to the real coordinator on port {port}"))
    }

    /// Runs `script` in bash as the admin with the cluster's `env.sh` sourced.
    pub fn as_admin(&self, script: &str) -> Result<Output> {
        let full = format!("source {}/env.sh && {script}", self.dir.display());
        Command::new("su")
            .args([self.version.admin(), "-s", "/bin/bash", "-c", &full])
            .output()
            .with_context(|| format!("running as {}: {script}", self.version.admin()))
    }

    /// Like [`as_admin`](Self::as_admin), failing with the output when the script fails.
    pub fn as_admin_ok(&self, script: &str) -> Result<String> {
        let out = self.as_admin(script)?;
        ensure!(
            out.status.success(),
            "`{script}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `gp_segment_configuration` as the coordinator on `port` reports it, read as the lab
    /// reads its own (one row type: the scenarios' predicates work on both).
    pub fn segments(&self, port: u16) -> Result<Vec<SegmentRow>> {
        Ok(gplab::catalog::read_segments(&mut self.connect(port)?)?)
    }

    /// The row of `dbid`.
    pub fn segment(&self, port: u16, dbid: i16) -> Result<SegmentRow> {
        self.segments(port)?
            .into_iter()
            .find(|s| s.dbid == dbid)
            .with_context(|| format!("no dbid {dbid} in gp_segment_configuration"))
    }

    /// Stops an instance at once (`pg_ctl stop -m immediate`), as a crash would.
    pub fn kill_instance(&self, datadir: &str) -> Result<()> {
        self.as_admin_ok(&format!("pg_ctl -D '{datadir}' stop -m immediate"))?;
        Ok(())
    }

    /// Kills the acting primary of `content` and has FTS mark it down (asking it to probe
    /// now, as its next probe would); returns the catalog as FTS left it.
    pub fn fail_primary(&self, content: i16) -> Result<Vec<SegmentRow>> {
        let primary = self
            .segments(self.coordinator_port())?
            .into_iter()
            .find(|r| r.content == content && r.role == 'p')
            .with_context(|| format!("no primary of content {content}"))?;
        self.kill_instance(&primary.datadir)?;
        self.probe_until(
            &format!("FTS to mark dbid {} down", primary.dbid),
            Duration::from_secs(60),
            |rows| {
                rows.iter()
                    .any(|r| r.dbid == primary.dbid && r.status == 'd')
            },
        )
    }

    /// Asks FTS to probe now (it would otherwise wait up to its 60 s interval) until
    /// `done` holds for the segment rows, or fails after `timeout`.
    pub fn probe_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[SegmentRow]) -> bool,
    ) -> Result<Vec<SegmentRow>> {
        let port = self.coordinator_port();
        wait_for(what, timeout, Duration::from_secs(1), || {
            let mut client = self.connect(port)?;
            client.simple_query("SELECT gp_request_fts_probe_scan()")?;
            let rows = self.segments(port)?;
            Ok(done(&rows).then_some(rows))
        })
    }

    /// Brings every instance back and the cluster to its preferred roles, all in sync:
    /// `gprecoverseg -a` (full with `-F` where incremental cannot), then `-r` if needed.
    pub fn heal(&self) -> Result<()> {
        let port = self.coordinator_port();
        let down = |rows: &[SegmentRow]| rows.iter().any(|s| s.status == 'd');
        if down(&self.segments(port)?) && self.as_admin("gprecoverseg -a")?.status.code() != Some(0)
        {
            self.as_admin_ok("gprecoverseg -aF")?;
        }
        self.probe_until("every pair in sync", Duration::from_secs(120), |rows| {
            rows.iter()
                .all(|s| s.status == 'u' && (s.content == -1 || s.mode == 's'))
        })?;
        let unbalanced = |rows: &[SegmentRow]| rows.iter().any(|s| s.role != s.preferred_role);
        if unbalanced(&self.segments(port)?) {
            self.as_admin_ok("gprecoverseg -ar")?;
            self.probe_until("preferred roles", Duration::from_secs(120), |rows| {
                !unbalanced(rows) && rows.iter().all(|s| s.status == 'u')
            })?;
        }
        Ok(())
    }
}

impl RealCluster {
    /// Puts `lines` at the top of `pg_hba.conf` on the coordinator and the standby (first
    /// match wins) and reloads; returns what to pass to [`restore_hba`](Self::restore_hba).
    pub fn prepend_hba(&self, lines: &str) -> Result<Vec<(PathBuf, String)>> {
        let mut saved = Vec::new();
        for datadir in self.coordinator_datadirs()? {
            let path = PathBuf::from(datadir).join("pg_hba.conf");
            let old = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            std::fs::write(&path, format!("{lines}\n{old}"))
                .with_context(|| format!("writing {}", path.display()))?;
            saved.push((path, old));
        }
        self.as_admin_ok("gpstop -u")?;
        Ok(saved)
    }

    /// Puts back the `pg_hba.conf` files [`prepend_hba`](Self::prepend_hba) changed.
    pub fn restore_hba(&self, saved: Vec<(PathBuf, String)>) -> Result<()> {
        for (path, old) in saved {
            std::fs::write(&path, old).with_context(|| format!("writing {}", path.display()))?;
        }
        self.as_admin_ok("gpstop -u")?;
        Ok(())
    }

    /// The data directories of the coordinator tier (coordinator, standby).
    fn coordinator_datadirs(&self) -> Result<Vec<String>> {
        Ok(self
            .segments(self.coordinator_port())?
            .into_iter()
            .filter(|s| s.content == -1)
            .map(|s| s.datadir)
            .collect())
    }
}

impl RealCluster {
    /// The admin's `(uid, gid)`, to run a service as the admin (the tools refuse root).
    pub fn admin_ids(&self) -> Result<(u32, u32)> {
        let user = nix::unistd::User::from_name(self.version.admin())?
            .with_context(|| format!("no OS user {}", self.version.admin()))?;
        Ok((user.uid.as_raw(), user.gid.as_raw()))
    }

    /// The admin's environment after `env.sh`, limited to `names` (what a remediator policy's
    /// local executor passes to the tools: GPHOME, PATH, PYTHONHOME, ...).
    pub fn admin_env(&self, names: &[&str]) -> Result<Vec<(String, String)>> {
        let env = self.as_admin_ok("env")?;
        Ok(env
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| names.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// The data directory of the standby (the catalog's `content = -1`, `role = 'm'` row).
    pub fn standby_datadir(&self) -> Result<String> {
        self.segments(self.coordinator_port())?
            .into_iter()
            .find(|s| s.content == -1 && s.role == 'm')
            .map(|s| s.datadir)
            .context("the cluster has no standby")
    }
}

/// This host's first address that is not loopback, so a test can tell a client's connection
/// (from it) from the coordinator's connection to itself (from 127.0.0.1 on these clusters).
pub fn host_address() -> Result<String> {
    let out = Command::new("hostname")
        .arg("-I")
        .output()
        .context("running hostname -I")?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
        .context("this host has no IPv4 address besides loopback")
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let mut destroy = Command::new(self.asset.join("cluster"));
        destroy.args(["destroy", "--dir"]).arg(&self.dir);
        if let Err(e) = run(destroy, "cluster destroy") {
            eprintln!(
                "real cluster in {} not destroyed: {e:#}",
                self.dir.display()
            );
        }
    }
}

fn run(mut command: Command, what: &str) -> Result<Output> {
    let out = command
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The first of `count` consecutive free ports in 20000..30000, starting at a place that
/// depends on the process id so parallel suites rarely probe the same range.
fn free_port_range(count: u16) -> Result<u16> {
    let start = 20_000 + (std::process::id() % 400) as u16 * 25;
    let mut base = start;
    for _ in 0..400 {
        let free = (base..base + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(base);
        }
        base = if base + 25 >= 30_000 {
            20_000
        } else {
            base + 25
        };
    }
    bail!("no {count} consecutive free ports between 20000 and 30000")
}
