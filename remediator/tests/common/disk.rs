//! A small tmpfs for the journal, to fill it or make it read-only. Tests run as root; where
//! mounting is not permitted (an unprivileged container) `GREENPLUM_TESTS_NO_MOUNT=1` turns
//! the test into a skip with a printed reason instead of a failure.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NO_MOUNT_ENV: &str = "GREENPLUM_TESTS_NO_MOUNT";

/// A mounted tmpfs, unmounted on drop (also when the test panics).
pub struct SmallDisk {
    pub path: PathBuf,
}

fn run(args: &[&str]) -> Result<(), String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. "8m") on `path`. `None` when mounting is not possible
    /// and the environment allows skipping; panics with the reason otherwise.
    pub fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        fs::create_dir_all(path).expect("mount point");
        let target = path.display().to_string();
        let options = format!("size={size},mode=0755");
        match run(&["mount", "-t", "tmpfs", "-o", &options, "tmpfs", &target]) {
            Ok(()) => Some(SmallDisk {
                path: path.to_path_buf(),
            }),
            Err(why) if std::env::var(NO_MOUNT_ENV).as_deref() == Ok("1") => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs for the journal ({why}); {NO_MOUNT_ENV}=1"
                );
                None
            }
            Err(why) => panic!(
                "cannot mount a tmpfs for the journal: {why}\n\
                 This test needs root (CAP_SYS_ADMIN). Set {NO_MOUNT_ENV}=1 to skip it."
            ),
        }
    }

    /// Writes `name` until the file system is full; returns the bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        let mut file = fs::File::create(self.path.join(name)).expect("filler");
        let chunk = vec![0xA5u8; 64 * 1024];
        let mut written = 0u64;
        // Shrinking writes take the last partial pages too.
        let mut size = chunk.len();
        while size > 0 {
            match file.write(&chunk[..size]) {
                Ok(0) => size /= 2,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == ErrorKind::StorageFull => size /= 2,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
        let _ = file.sync_all();
        written
    }

    pub fn remount(&self, options: &str) -> Result<(), String> {
        let target = self.path.display().to_string();
        run(&["mount", "-o", &format!("remount,{options}"), &target])
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let target = self.path.display().to_string();
        if run(&["umount", &target]).is_err() {
            // A process still holds a file there (a test failed before stopping it): detach
            // now, the kernel frees the tmpfs when the last file closes.
            if let Err(why) = run(&["umount", "-l", &target]) {
                eprintln!("cannot unmount {target}: {why}");
            }
        }
    }
}
