//! Process figures from `/proc`: CPU time (user + sys) and memory high-water marks.
//!
//! CPU comes from `/proc/PID/stat` in clock ticks (usually 10 ms): deltas over hundreds of
//! scrapes are precise enough, a single scrape is not, so callers always divide a delta.

use std::fs;

use anyhow::{bail, Context, Result};

/// Seconds of CPU (user + sys) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let Some(close) = text.rfind(')') else {
        bail!("{path}: no ')' after the command name");
    };
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the name: state is index 0, utime is field 14 of the whole line (index 11), stime 12.
    let ticks = |index: usize, name: &str| -> Result<u64> {
        fields
            .get(index)
            .with_context(|| format!("{path}: no {name} field"))?
            .parse::<u64>()
            .with_context(|| format!("{path}: {name} is not a number"))
    };
    let total = ticks(11, "utime")? + ticks(12, "stime")?;
    Ok(total as f64 / clock_ticks_per_second()?)
}

fn clock_ticks_per_second() -> Result<f64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .context("sysconf(CLK_TCK)")?
        .context("sysconf(CLK_TCK) has no value")?;
    Ok(ticks as f64)
}

/// Memory figures of `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmHWM`: peak resident set size.
    pub peak_rss: u64,
    /// `VmRSS`: resident set size now.
    pub rss: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(Memory {
        peak_rss: status_kib(&text, "VmHWM:").with_context(|| format!("{path}: VmHWM"))? * 1024,
        rss: status_kib(&text, "VmRSS:").with_context(|| format!("{path}: VmRSS"))? * 1024,
    })
}

fn status_kib(text: &str, key: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} line"))?;
    let value = line[key.len()..]
        .split_whitespace()
        .next()
        .with_context(|| format!("{key} has no value"))?;
    value
        .parse()
        .with_context(|| format!("{key} value {value:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        // Burn a little CPU so the figure cannot be a stale zero forever.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i ^ (x >> 3));
        }
        assert_ne!(x, 1);
        assert!(cpu_seconds(pid).unwrap() > 0.0);
        let m = memory(pid).unwrap();
        assert!(m.peak_rss >= m.rss && m.rss > 0);
    }

    #[test]
    fn status_parsing_names_the_missing_key() {
        let err = status_kib("VmRSS:\t  1234 kB\n", "VmHWM:").unwrap_err();
        assert!(err.to_string().contains("VmHWM"));
        assert_eq!(status_kib("VmRSS:\t  1234 kB\n", "VmRSS:").unwrap(), 1234);
    }
}
