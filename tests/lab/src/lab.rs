//! The `Lab` handle: start, inspect, break and stop a lab cluster.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use postgres::Client;

use crate::catalog::{self, SegmentRow};
use crate::config::{Flavor, LabConfig};
use crate::conn;
use crate::data::{self, Checksum};
use crate::error::{invalid, Context, Error, Result};
use crate::fts;
use crate::instance::{write_server_file, LAG_CONF};
use crate::ports;
use crate::process;
use crate::provision;
use crate::state::{initial_layout, LabKind, LabState};

/// Names of the management-tool stand-ins installed in `<lab>/bin`.
pub const TOOLS: [&str; 3] = ["gprecoverseg", "gpinitstandby", "gpactivatestandby"];

/// A running lab. Dropping a lab that this handle started stops every server and the FTS
/// daemon (and deletes its directory when the lab made it), so no server outlives a test.
pub struct Lab {
    dir: PathBuf,
    /// Stop everything on drop.
    owned: bool,
    /// Delete `dir` on drop (it is a temp dir the lab created).
    remove_dir: bool,
    daemon: Option<Child>,
    cached: Mutex<LabState>,
}

impl Lab {
    /// Starts a cluster in a new temp dir, on free ports unless `config.base_port` is set.
    pub fn up(config: LabConfig) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("gplab-")
            .tempdir()
            .ctx(|| "creating a temp dir for the lab".into())?
            .keep();
        let mut lab = Self::up_at(config, &dir, Some(std::process::id()))?;
        lab.remove_dir = true;
        Ok(lab)
    }

    /// Starts a cluster in `dir`. With `owner_pid`, the FTS daemon stops the lab when that
    /// process dies (test runs); the CLI passes `None` so the lab outlives `gplab up`.
    pub fn up_at(config: LabConfig, dir: &Path, owner_pid: Option<u32>) -> Result<Lab> {
        config.validate()?;
        make_room(dir)?;
        fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        let base_port = match config.base_port {
            Some(p) => p,
            None => ports::reserve(config.port_count(), owner_pid.unwrap_or(std::process::id()))?,
        };
        let data = dir.join("data");
        let state = LabState {
            kind: LabKind::Cluster,
            instances: initial_layout(&config, base_port, &data),
            config,
            base_port,
            acting_coordinator: 1,
            catalog_segments: 0,
            retired: Vec::new(),
        };
        // Saved before anything starts, so `down` can clean up a half-started lab.
        state.save(dir)?;
        let mut lab = Lab {
            dir: dir.to_path_buf(),
            owned: true,
            remove_dir: false,
            daemon: None,
            cached: Mutex::new(state.clone()),
        };
        provision::build(dir, &state)?;
        lab.install_tools()?;
        lab.daemon = Some(lab.spawn_fts(owner_pid)?);
        Ok(lab)
    }

    /// Attaches to an existing lab without taking ownership (dropping it stops nothing).
    pub fn open(dir: &Path) -> Result<Lab> {
        let state = LabState::load(dir)?;
        Ok(Lab {
            dir: dir.to_path_buf(),
            owned: false,
            remove_dir: false,
            daemon: None,
            cached: Mutex::new(state),
        })
    }

    /// One PostgreSQL server holding the Greenplum relations of a cluster of `segments`
    /// primaries and as many mirrors (synthetic rows), for benchmarks. No FTS.
    pub fn catalog_only(segments: u32, flavor: Flavor) -> Result<Lab> {
        let dir = tempfile::Builder::new()
            .prefix("gplab-catalog-")
            .tempdir()
            .ctx(|| "creating a temp dir for the catalog".into())?
            .keep();
        let mut lab = Self::catalog_only_at(segments, flavor, &dir, None)?;
        lab.remove_dir = true;
        Ok(lab)
    }

    pub fn catalog_only_at(
        segments: u32,
        flavor: Flavor,
        dir: &Path,
        port: Option<u16>,
    ) -> Result<Lab> {
        let state = crate::catalog_only::build(segments, flavor, dir, port)?;
        Ok(Lab {
            dir: dir.to_path_buf(),
            owned: true,
            remove_dir: false,
            daemon: None,
            cached: Mutex::new(state),
        })
    }

    /// Keeps the lab running after this handle is dropped (the CLI's `gplab up`).
    pub fn detach(mut self) {
        self.owned = false;
        self.remove_dir = false;
        self.daemon = None;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's state, re-read from disk (the stand-ins change it).
    pub fn state(&self) -> LabState {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(s) = LabState::load(&self.dir) {
            *cached = s;
        }
        cached.clone()
    }

    pub fn flavor(&self) -> Flavor {
        self.state().config.flavor
    }

    /// Port of the coordinator that currently acts (follows `gpactivatestandby`).
    pub fn coordinator_port(&self) -> u16 {
        let s = self.state();
        s.coordinator().map(|c| c.port).unwrap_or(s.base_port)
    }

    pub fn coordinator_datadir(&self) -> PathBuf {
        let s = self.state();
        s.coordinator()
            .map(|c| c.datadir.clone())
            .unwrap_or_default()
    }

    pub fn standby_port(&self) -> Option<u16> {
        self.state().standby().map(|s| s.port)
    }

    pub fn standby_datadir(&self) -> Option<PathBuf> {
        self.state().standby().map(|s| s.datadir.clone())
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// What `greenplum_path.sh` plus the cluster's env file would export.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = match std::env::var("PATH") {
            Ok(p) if !p.is_empty() => format!("{}:{p}", self.bin_dir().display()),
            _ => format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir().display()),
        };
        let datadir = self.coordinator_datadir().display().to_string();
        vec![
            ("PATH".into(), path),
            ("COORDINATOR_DATA_DIRECTORY".into(), datadir.clone()),
            ("MASTER_DATA_DIRECTORY".into(), datadir),
            ("PGHOST".into(), conn::HOST.into()),
            ("PGPORT".into(), self.coordinator_port().to_string()),
            ("PGUSER".into(), conn::USER.into()),
            ("PGDATABASE".into(), conn::DATABASE.into()),
            ("GPLAB_DIR".into(), self.dir.display().to_string()),
        ]
    }

    /// A command with the lab's environment, e.g. `lab.command("gprecoverseg").arg("-a")`:
    /// the stand-ins run through PATH, exactly as production argv would.
    pub fn command(&self, program: &str) -> Command {
        let env = self.env();
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let resolved = std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(program));
        let mut cmd = Command::new(resolved);
        cmd.envs(env);
        cmd
    }

    /// A client to the acting coordinator, database `postgres`.
    pub fn client(&self) -> Result<Client> {
        conn::connect(self.coordinator_port())
    }

    /// `gp_segment_configuration` of the acting coordinator.
    pub fn segments(&self) -> Result<Vec<SegmentRow>> {
        catalog::read_segments_at(self.coordinator_port())
    }

    /// Runs `sql` on the acting coordinator and returns every row as text (NULL as None).
    pub fn query_catalog(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut c = self.client()?;
        let msgs = c.simple_query(sql).ctx(|| format!("running `{sql}`"))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// Polls `check` every 200 ms until it returns true; an error once `timeout` passed.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Lab) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    secs: timeout.as_secs(),
                });
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the catalog satisfies `check`; returns the rows that did.
    pub fn wait_for_catalog(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[SegmentRow]) -> bool,
    ) -> Result<Vec<SegmentRow>> {
        let mut last = Vec::new();
        self.wait_until(what, timeout, |lab| match lab.segments() {
            Ok(rows) if check(&rows) => {
                last = rows;
                true
            }
            _ => false,
        })?;
        Ok(last)
    }

    /// Stops (immediate) the instance that currently acts as primary of `content`.
    pub fn fail_primary(&self, content: i16) -> Result<()> {
        self.fail_role(content, 'p')
    }

    /// Stops (immediate) the instance that currently acts as mirror of `content`.
    pub fn fail_mirror(&self, content: i16) -> Result<()> {
        self.fail_role(content, 'm')
    }

    fn fail_role(&self, content: i16, role: char) -> Result<()> {
        let rows = self.segments()?;
        let Some(row) = rows.iter().find(|r| r.content == content && r.role == role) else {
            return invalid(format!(
                "the catalog has no {role} row for content {content}"
            ));
        };
        tracing::info!(content, dbid = row.dbid, "failing instance");
        process::pg_ctl_stop(Path::new(&row.datadir), "immediate")
    }

    /// Stops every instance on symbolic host `host` (`cdw`, `scdw`, `sdw1`, ...).
    pub fn fail_host(&self, host: &str) -> Result<()> {
        let state = self.state();
        let on_host: Vec<_> = state.instances.iter().filter(|i| i.host == host).collect();
        if on_host.is_empty() {
            return invalid(format!("no instance of this lab lives on host {host}"));
        }
        for i in on_host {
            process::pg_ctl_stop(&i.datadir, "immediate")?;
        }
        Ok(())
    }

    pub fn fail_coordinator(&self) -> Result<()> {
        let s = self.state();
        process::pg_ctl_stop(&s.coordinator()?.datadir, "immediate")
    }

    pub fn fail_standby(&self) -> Result<()> {
        let s = self.state();
        match s.standby() {
            Some(st) => process::pg_ctl_stop(&st.datadir, "immediate"),
            None => invalid("this lab has no standby coordinator"),
        }
    }

    /// Pauses (`on`) or resumes WAL replay on the mirror of `content`. Mirrors run with
    /// hot_standby off, so pg_wal_replay_pause() is out of reach; a one-hour
    /// recovery_min_apply_delay stops replay at the next commit record instead, so replay
    /// lag grows under load while the mirror still receives and flushes in sync.
    pub fn lag(&self, content: i16, on: bool) -> Result<()> {
        let rows = self.segments()?;
        let Some(m) = rows.iter().find(|r| r.content == content && r.role == 'm') else {
            return invalid(format!("content {content} has no mirror"));
        };
        let file = Path::new(&m.datadir).join(LAG_CONF);
        if on {
            write_server_file(&file, "recovery_min_apply_delay = '1h'\n")?;
        } else if file.exists() {
            fs::remove_file(&file).ctx(|| format!("removing {}", file.display()))?;
        }
        process::pg_ctl_reload(Path::new(&m.datadir))
    }

    pub fn load(&self, rows: u64) -> Result<u64> {
        data::load(self.coordinator_port(), rows)
    }

    pub fn checksum(&self) -> Result<Checksum> {
        data::checksum(self.coordinator_port())
    }

    /// Stops the FTS daemon and every server. Idempotent.
    pub fn down(&mut self) -> Result<()> {
        stop_servers(&self.dir);
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        Ok(())
    }

    fn install_tools(&self) -> Result<()> {
        let bin = process::gplab_binary()?;
        let dir = self.bin_dir();
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        for name in TOOLS.iter().chain(std::iter::once(&"gplab")) {
            let link = dir.join(name);
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink(&bin, &link)
                .ctx(|| format!("linking {} to {}", link.display(), bin.display()))?;
        }
        Ok(())
    }

    fn spawn_fts(&self, owner_pid: Option<u32>) -> Result<Child> {
        let log_path = self.dir.join(fts::LOG_FILE);
        let log = File::create(&log_path).ctx(|| format!("creating {}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .ctx(|| "duplicating the FTS log handle".into())?;
        let pid_file = self.dir.join(fts::PID_FILE);
        let _ = fs::remove_file(&pid_file);
        let mut cmd = Command::new(process::gplab_binary()?);
        cmd.arg("fts-daemon").arg("--dir").arg(&self.dir);
        if let Some(pid) = owner_pid {
            cmd.arg("--owner-pid").arg(pid.to_string());
        }
        // Its own process group: a Ctrl-C meant for `gplab up` must not kill the daemon.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd.spawn().ctx(|| "starting the FTS daemon".into())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !pid_file.exists() {
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: "the FTS daemon to start".into(),
                    secs: 15,
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(child)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            self.print_logs_for_a_failed_test();
        }
        if self.owned {
            let _ = self.down();
            if self.remove_dir {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}

impl Lab {
    /// A test failed while this lab was up: its directory is about to be deleted, so the FTS
    /// log and the tail of every server log go to stderr, which the test harness shows with the
    /// failure (the only trace a CI run keeps).
    fn print_logs_for_a_failed_test(&self) {
        let mut logs = vec![self.dir.join(fts::LOG_FILE)];
        if let Ok(entries) = fs::read_dir(self.dir.join("logs")) {
            let mut servers: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            servers.sort();
            logs.extend(servers);
        }
        for path in logs {
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_LINES_ON_FAILURE)..];
            eprintln!("---- {} (last {} lines)", path.display(), tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// How much of each log a failed test prints.
const LOG_LINES_ON_FAILURE: usize = 60;

/// Stops the FTS daemon (unless it is us) and every server of the lab in `dir`, including
/// servers of a half-started lab. Errors are logged, not returned: this is the cleanup path.
/// Lets `up` use `dir`: refuses while a lab there still runs, and clears one that `gplab down`
/// stopped (its state, data and logs), so `up` after `down` starts anew.
pub(crate) fn make_room(dir: &Path) -> Result<()> {
    if !LabState::path(dir).exists() {
        return Ok(());
    }
    if let Some(what) = still_running(dir) {
        return invalid(format!(
            "{} holds a running lab ({what}): run `gplab down` first",
            dir.display()
        ));
    }
    tracing::info!(dir = %dir.display(), "clearing the stopped lab before starting anew");
    for name in ["data", "logs"] {
        let path = dir.join(name);
        if path.exists() {
            fs::remove_dir_all(&path).ctx(|| format!("removing {}", path.display()))?;
        }
    }
    for path in [LabState::path(dir), dir.join(fts::LOG_FILE)] {
        if path.exists() {
            fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// What of the lab in `dir` still runs: its FTS daemon or a server (a live postmaster.pid).
fn still_running(dir: &Path) -> Option<String> {
    let alive = |pid_file: &Path| {
        fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok())
            .is_some_and(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            })
    };
    if alive(&dir.join(fts::PID_FILE)) {
        return Some("the FTS daemon".into());
    }
    let state = LabState::load(dir).ok()?;
    state
        .instances
        .iter()
        .find(|i| alive(&i.datadir.join("postmaster.pid")))
        .map(|i| format!("the server of dbid {}", i.dbid))
}

pub fn stop_servers(dir: &Path) {
    let pid_file = dir.join(fts::PID_FILE);
    if let Some(pid) = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        if pid != std::process::id() as i32 {
            let p = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..50 {
                if nix::sys::signal::kill(p, None).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = fs::remove_file(&pid_file);
    }
    let Ok(state) = LabState::load(dir) else {
        return;
    };
    let dirs: Vec<PathBuf> = state
        .instances
        .iter()
        .map(|i| i.datadir.clone())
        .chain(state.retired.iter().cloned())
        .collect();
    thread::scope(|s| {
        for d in &dirs {
            s.spawn(move || {
                if let Err(e) = process::pg_ctl_stop(d, "immediate") {
                    tracing::warn!(datadir = %d.display(), error = %e, "could not stop server");
                }
            });
        }
    });
}
