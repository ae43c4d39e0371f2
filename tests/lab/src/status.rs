//! `gplab status`: a gpstate-like view of the catalog next to what live probes see.

use std::fmt::Write;
use std::time::Duration;

use crate::catalog;
use crate::conn::{self, Probe};
use crate::error::Result;
use crate::state::{LabKind, LabState};

fn probe_word(p: Probe) -> &'static str {
    match p {
        Probe::Up => "accepting",
        Probe::Rejecting => "replica",
        Probe::Down => "DOWN",
    }
}

pub fn render(dir: &std::path::Path) -> Result<String> {
    let state = LabState::load(dir)?;
    let coord = state.coordinator()?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} ({}, flavor {}), coordinator dbid {} on port {}",
        dir.display(),
        match state.kind {
            LabKind::Cluster => "cluster",
            LabKind::CatalogOnly => "catalog only",
        },
        state.config.flavor,
        coord.dbid,
        coord.port
    );
    if state.kind == LabKind::CatalogOnly {
        let _ = writeln!(out, "synthetic segments: {}", state.catalog_segments);
        return Ok(out);
    }
    let fts = std::fs::read_to_string(dir.join(crate::fts::PID_FILE)).unwrap_or_default();
    let _ = writeln!(
        out,
        "FTS daemon pid: {}",
        if fts.is_empty() { "none" } else { fts.trim() }
    );
    let rows = match catalog::read_segments_at(coord.port) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "coordinator not answering: {e}");
            return Ok(out);
        }
    };
    let _ = writeln!(
        out,
        "{:>5} {:>7} {:>4} {:>9} {:>4} {:>6} {:>6} {:<8} {:<10} datadir",
        "dbid", "content", "role", "preferred", "mode", "status", "port", "host", "live"
    );
    for r in &rows {
        let live = conn::probe(r.port, Duration::from_secs(2));
        let _ = writeln!(
            out,
            "{:>5} {:>7} {:>4} {:>9} {:>4} {:>6} {:>6} {:<8} {:<10} {}",
            r.dbid,
            r.content,
            r.role,
            r.preferred_role,
            r.mode,
            r.status,
            r.port,
            r.hostname,
            probe_word(live),
            r.datadir
        );
    }
    Ok(out)
}
