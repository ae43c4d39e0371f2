//! Free port ranges for labs started in parallel (tests run concurrently, in several
//! processes). A range is chosen under an exclusive file lock and recorded in the same file
//! with the reserving process's pid, so two labs never pick overlapping ranges even before
//! their servers listen.

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
    for i in 0..span {
        let base = FIRST + ((start + i) % span) * 100;
        if base + count32 > LAST {
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
