//! Free port ranges for labs started in parallel (tests run concurrently, in several
//! processes). A range is chosen under an exclusive file lock and recorded in the same file
//! with the reserving process's pid, so two labs never pick overlapping ranges even before
//! their servers listen.
//!
//! Ranges avoid the kernel's ephemeral ports (`ip_local_port_range`, 32768-60999 by
//! default): while an instance is down (killed, being recovered), any outgoing connection on
//! the machine may be given its port as a source port, and the instance then cannot listen
//! again ("Address already in use", even with SO_REUSEADDR).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::conn::port_is_free;
use crate::error::{invalid, Context, Error, Result};

const FIRST: u32 = 20000;
const LAST: u32 = 60000;

fn registry() -> PathBuf {
    std::env::temp_dir().join("gplab-ports.lock")
}

#[derive(Debug, Clone, Copy)]
struct Reservation {
    base: u32,
    count: u32,
    pid: i32,
}

fn parse(text: &str) -> Vec<Reservation> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|w| w.parse::<i64>().ok());
            let (base, count, pid) = (it.next()??, it.next()??, it.next()??);
            Some(Reservation {
                base: u32::try_from(base).ok()?,
                count: u32::try_from(count).ok()?,
                pid: i32::try_from(pid).ok()?,
            })
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Reserves `count` consecutive free ports for `owner_pid` and returns the first.
pub fn reserve(count: u16, owner_pid: u32) -> Result<u16> {
    let path = registry();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        context: format!("locking {}", path.display()),
        source: e.into(),
    })?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .ctx(|| format!("reading {}", path.display()))?;
    let mut live: Vec<Reservation> = parse(&text).into_iter().filter(|r| alive(r.pid)).collect();
    let count32 = u32::from(count);
    // Start somewhere that depends on the pid so parallel processes rarely probe the same
    // ranges first; step in blocks of 100 to keep labs apart.
    let span = (LAST - FIRST) / 100;
    let start = owner_pid % span;
    let ephemeral = ephemeral_ports();
    // Where the ephemeral range covers everything (some containers), any free range will do.
    let avoid_ephemeral = (0..span).any(|i| outside(FIRST + i * 100, count32, ephemeral));
    for i in 0..span {
        let base = FIRST + ((start + i) % span) * 100;
        if base + count32 > LAST || (avoid_ephemeral && !outside(base, count32, ephemeral)) {
            continue;
        }
        let overlaps = live
            .iter()
            .any(|r| base < r.base + r.count && r.base < base + count32);
        if overlaps {
            continue;
        }
        if (base..base + count32).all(|p| u16::try_from(p).map(port_is_free).unwrap_or(false)) {
            live.push(Reservation {
                base,
                count: count32,
                pid: i32::try_from(owner_pid).unwrap_or(i32::MAX),
            });
            let body: String = live
                .iter()
                .map(|r| format!("{} {} {}\n", r.base, r.count, r.pid))
                .collect();
            file.set_len(0)
                .ctx(|| "truncating the port registry".into())?;
            file.seek(SeekFrom::Start(0))
                .ctx(|| "rewinding the port registry".into())?;
            file.write_all(body.as_bytes())
                .ctx(|| "writing the port registry".into())?;
            return u16::try_from(base).or_else(|_| invalid("port out of range"));
        }
    }
    invalid(format!(
        "no {count} consecutive free ports between {FIRST} and {LAST}"
    ))
}

/// The kernel's ephemeral port range, when it can be read.
fn ephemeral_ports() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text.split_whitespace().map(|w| w.parse::<u32>().ok());
    Some((bounds.next()??, bounds.next()??))
}

/// Whether `count` ports from `base` stay clear of the `ephemeral` range.
fn outside(base: u32, count: u32, ephemeral: Option<(u32, u32)>) -> bool {
    ephemeral.is_none_or(|(lo, hi)| base + count <= lo || base > hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_clear_of_the_ephemeral_ports() {
        let linux = Some((32768, 60999));
        assert!(outside(20000, 10, linux));
        assert!(outside(32700, 68, linux));
        assert!(!outside(32700, 69, linux));
        assert!(!outside(46600, 10, linux));
        assert!(outside(46600, 10, None));
        // A machine whose ephemeral range covers FIRST..LAST leaves nothing outside it.
        let everything = Some((1024, 65535));
        assert!(!(0..(LAST - FIRST) / 100).any(|i| outside(FIRST + i * 100, 10, everything)));
    }
}
