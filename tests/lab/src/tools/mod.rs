//! Stand-ins for Greenplum's management tools. The `gplab` binary dispatches on argv[0], so
//! `<lab>/bin/gprecoverseg -a` runs exactly the production command line.

mod activatestandby;
mod initstandby;
pub mod log;
mod recoverseg;

use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::error::{invalid, Result};

/// Runs the stand-in named by argv[0], if it is one; returns its exit code.
pub fn dispatch(args: &[OsString]) -> Option<i32> {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())?
        .to_string();
    let rest: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = match name.as_str() {
        "gprecoverseg" => recoverseg::main(&rest),
        "gpinitstandby" => initstandby::main(&rest),
        "gpactivatestandby" => activatestandby::main(&rest),
        _ => return None,
    };
    Some(code)
}

/// The lab a stand-in works on: `GPLAB_DIR`, else the lab whose `bin/` holds argv[0].
pub fn lab_dir(argv0: &str) -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("GPLAB_DIR") {
        return Ok(PathBuf::from(d));
    }
    // Production tools are found through PATH, and a remediator clears the environment down
    // to an allowlist without GPLAB_DIR: resolve a bare argv[0] the way the shell did.
    let invoked = if argv0.contains('/') {
        Some(PathBuf::from(argv0))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(argv0))
                .find(|candidate| candidate.is_file())
        })
    };
    let from_path = invoked
        .as_deref()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .filter(|d| crate::state::LabState::path(d).exists());
    match from_path {
        Some(d) => Ok(d.to_path_buf()),
        None => invalid("cannot find the lab: set GPLAB_DIR (see `gplab env`)"),
    }
}

/// The tools' Yy|Nn prompt; anything but y/Y (or no input) is No.
pub fn confirm(question: &str) -> bool {
    println!("{question} Yy|Nn (default=N):");
    println!("> ");
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(_) => matches!(line.trim(), "y" | "Y" | "yes" | "Yes"),
        Err(_) => false,
    }
}
