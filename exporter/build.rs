//! Records the git revision the binary was built from, for `greenplum_exporter_build_info`.
//! Never fails the build: outside a git checkout (a crate tarball, a container build without
//! `.git`) the revision is "unknown".

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=GREENPLUM_EXPORTER_REVISION={revision}");
    // Rebuild when HEAD moves; both paths are optional and cargo tolerates missing ones.
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
}
