//! Running PostgreSQL's own programs. PostgreSQL refuses to run as root, so when we are root
//! every server command runs as the unprivileged `postgres` user.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::unistd::{Gid, Uid, User};

use crate::error::{invalid, Context, Error, Result};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The uid/gid server processes run as: `postgres` when we are root, else ourselves.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
    pub switch: bool,
}

pub fn run_as() -> Result<RunAs> {
    if !Uid::effective().is_root() {
        return Ok(RunAs {
            uid: Uid::effective(),
            gid: Gid::effective(),
            switch: false,
        });
    }
    match User::from_name("postgres") {
        Ok(Some(u)) => Ok(RunAs {
            uid: u.uid,
            gid: u.gid,
            switch: true,
        }),
        Ok(None) => invalid("running as root but there is no `postgres` user to run PostgreSQL as"),
        Err(e) => invalid(format!("looking up the `postgres` user: {e}")),
    }
}

/// Gives `path` (recursively) to the server user, so servers can write there.
///
/// Files may appear and vanish while we walk (parallel provisioning of sibling instances,
/// servers removing temp files): a vanished entry needs no owner, so it is not an error.
pub fn chown_to_server(path: &Path) -> Result<()> {
    let who = run_as()?;
    if !who.switch {
        return Ok(());
    }
    chown_tree(path, who.uid.as_raw(), who.gid.as_raw())
        .ctx(|| format!("giving {} to the server user", path.display()))
}

/// Gives only the directory `path` itself to the server user (a shared parent such as
/// `data/`, whose other children belong to concurrent work).
pub fn chown_dir_to_server(path: &Path) -> Result<()> {
    let who = run_as()?;
    if !who.switch {
        return Ok(());
    }
    ignore_vanished(std::os::unix::fs::lchown(
        path,
        Some(who.uid.as_raw()),
        Some(who.gid.as_raw()),
    ))
    .ctx(|| format!("giving {} to the server user", path.display()))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    ignore_vanished(std::os::unix::fs::lchown(path, Some(uid), Some(gid)))?;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if metadata.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            match entry {
                Ok(entry) => chown_tree(&entry.path(), uid, gid)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn ignore_vanished(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A command for one of PostgreSQL's programs, run as the server user.
pub fn pg_command(program: &str) -> Result<Command> {
    let who = run_as()?;
    let mut cmd = Command::new(Path::new(PG_BIN).join(program));
    if who.switch {
        cmd.uid(who.uid.as_raw()).gid(who.gid.as_raw());
        cmd.env("HOME", "/tmp").env("USER", "postgres");
    }
    // The server user may not be able to read our working directory.
    cmd.current_dir("/");
    cmd.env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGDATABASE")
        .env_remove("PGUSER");
    Ok(cmd)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs to completion; a non-zero exit is an error carrying the program's output.
pub fn run(mut cmd: Command) -> Result<Output> {
    let what = describe(&cmd);
    tracing::debug!(command = %what, "running");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("starting `{what}`"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: what,
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        })
    }
}

pub fn pg(program: &str, args: &[&OsStr]) -> Result<Output> {
    let mut cmd = pg_command(program)?;
    cmd.args(args);
    run(cmd)
}

/// `pg_ctl start`, waiting until the server accepts connections (or is a standby that
/// rejects them, which pg_ctl also counts as started).
pub fn pg_ctl_start(datadir: &Path, log: &Path) -> Result<()> {
    let mut cmd = pg_command("pg_ctl")?;
    cmd.arg("start")
        .arg("-w")
        .arg("-t")
        .arg("120")
        .arg("-D")
        .arg(datadir)
        .arg("-l")
        .arg(log);
    // pg_ctl leaves the postmaster attached to our stdout/stderr otherwise, which keeps
    // pipes of callers (tests capturing output) open forever.
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    run(cmd).map(|_| ()).map_err(|e| match e {
        // "Examine the log output" names no reason: the server's last words do.
        Error::Command {
            command,
            status,
            output,
        } => Error::Command {
            command,
            status,
            output: format!(
                "{output}\nlast lines of {}:\n{}",
                log.display(),
                tail(log, 15)
            ),
        },
        other => other,
    })
}

/// The last `lines` lines of a server log (which only its owner may read: we are root or
/// that owner).
fn tail(log: &Path, lines: usize) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// `pg_ctl stop -m MODE`; stopping a server that is not running is not an error.
pub fn pg_ctl_stop(datadir: &Path, mode: &str) -> Result<()> {
    if !is_running(datadir) {
        return Ok(());
    }
    let mut cmd = pg_command("pg_ctl")?;
    cmd.arg("stop")
        .arg("-w")
        .arg("-t")
        .arg("60")
        .arg("-m")
        .arg(mode)
        .arg("-D")
        .arg(datadir);
    match run(cmd) {
        Ok(_) => Ok(()),
        Err(_) if !is_running(datadir) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn pg_ctl_promote(datadir: &Path) -> Result<()> {
    let mut cmd = pg_command("pg_ctl")?;
    cmd.arg("promote")
        .arg("-w")
        .arg("-t")
        .arg("60")
        .arg("-D")
        .arg(datadir);
    run(cmd).map(|_| ())
}

pub fn pg_ctl_reload(datadir: &Path) -> Result<()> {
    let mut cmd = pg_command("pg_ctl")?;
    cmd.arg("reload").arg("-D").arg(datadir);
    run(cmd).map(|_| ())
}

/// Whether a postmaster runs on `datadir`, judged by its pid file and a signal-0 probe.
pub fn is_running(datadir: &Path) -> bool {
    postmaster_pid(datadir)
        .map(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok())
        .unwrap_or(false)
}

pub fn postmaster_pid(datadir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(datadir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Finds the `gplab` binary: `GPLAB_BIN`, else next to (or one level above) the running
/// executable, which is where cargo puts it for tests (`target/debug/deps/x` ->
/// `target/debug/gplab`), else builds it with cargo into the same target dir.
pub fn gplab_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("GPLAB_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ctx(|| "locating the running executable".into())?;
    if exe.file_name() == Some(OsStr::new("gplab")) {
        return Ok(exe);
    }
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("gplab"));
        if let Some(up) = dir.parent() {
            candidates.push(up.join("gplab"));
        }
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    build_gplab(&exe)
}

fn build_gplab(exe: &Path) -> Result<PathBuf> {
    // exe is <target>/<profile>/deps/<name>; build into <target> so the binary lands in
    // <target>/debug/gplab.
    let target = exe
        .ancestors()
        .find(|p| p.file_name() == Some(OsStr::new("deps")))
        .and_then(|deps| deps.parent())
        .and_then(|profile| profile.parent());
    let Some(target) = target else {
        return invalid(
            "cannot find the gplab binary: set GPLAB_BIN or run `cargo build -p gplab`",
        );
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "gplab", "--bin", "gplab"])
        .env("CARGO_TARGET_DIR", target);
    run(cmd)?;
    let built = target.join("debug").join("gplab");
    if built.is_file() {
        Ok(built)
    } else {
        invalid(format!(
            "built gplab but found no binary at {}",
            built.display()
        ))
    }
}
