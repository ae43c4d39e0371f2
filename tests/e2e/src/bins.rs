//! Where the workspace's binaries are. `cargo test --workspace` builds every binary before it
//! runs the tests; an integration test's own executable lives in `target/<profile>/deps`, so the
//! binaries are one directory up. `GREENPLUM_BIN_DIR` overrides this (e.g. release builds).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

pub fn binary(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("GREENPLUM_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().context("locating the test executable")?;
            let deps = exe.parent().context("test executable has no directory")?;
            // target/<profile>/deps/<test> -> target/<profile>; a binary of this crate (the
            // demo) lives in target/<profile> itself.
            if deps.ends_with("deps") {
                deps.parent().context("deps has no parent")?.to_path_buf()
            } else {
                deps.to_path_buf()
            }
        }
    };
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build the workspace first (`cargo build --workspace`) or set GREENPLUM_BIN_DIR",
            path.display()
        );
    }
    Ok(path)
}
