//! Room kept on the SQLite journal's disk for the records of work already under way.
//!
//! When the disk fills while `gprecoverseg` runs, the command's end, its verification and
//! the action's last states must still be written: they are the audit trail, and without
//! them the action would look open forever. The journal keeps a file of real (not sparse)
//! bytes next to itself; a record of the planner that fails for lack of space frees it and
//! is written again. Deliveries are refused (503, Alertmanager retries) until the room can
//! be taken back, so new work never eats the space kept for the old.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Enough for several command outputs (64 KiB each at most) and their states, WAL frames
/// included.
pub(crate) const RESERVE_BYTES: u64 = 2 * 1024 * 1024;

pub(crate) struct Reserve {
    path: PathBuf,
    bytes: u64,
}

impl Reserve {
    /// The reserve of the journal at `journal` (`JOURNAL-reserve`).
    pub(crate) fn beside(journal: &Path, bytes: u64) -> Reserve {
        let mut name = journal.as_os_str().to_owned();
        name.push("-reserve");
        Reserve {
            path: PathBuf::from(name),
            bytes,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes sure the room is taken; an error means the disk does not have it.
    pub(crate) fn keep(&self) -> io::Result<()> {
        if fs::metadata(&self.path).is_ok_and(|m| m.len() == self.bytes) {
            return Ok(());
        }
        let mut partial = self.path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let written =
            write_filler(&partial, self.bytes).and_then(|()| fs::rename(&partial, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&partial);
        }
        written
    }

    /// Gives the room back to the journal; false when there was none to give.
    pub(crate) fn release(&self) -> bool {
        fs::remove_file(&self.path).is_ok()
    }
}

/// Writes `bytes` bytes that no file system can compress or leave sparse.
fn write_filler(path: &Path, bytes: u64) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            // xorshift64: cheap bytes that do not compress.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_releases_and_takes_back_the_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reserve = Reserve::beside(&dir.path().join("journal.db"), 100_000);
        assert_eq!(reserve.path(), dir.path().join("journal.db-reserve"));
        reserve.keep().expect("keep");
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).ok();
        assert_eq!(size(reserve.path()), Some(100_000));
        assert!(reserve.release());
        assert_eq!(size(reserve.path()), None);
        assert!(!reserve.release(), "nothing left to release");
        reserve.keep().expect("take back");
        assert_eq!(size(reserve.path()), Some(100_000));
    }

    #[test]
    fn a_reserve_of_the_wrong_size_is_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reserve = Reserve::beside(&dir.path().join("j.db"), 70_000);
        fs::write(reserve.path(), b"short").expect("write");
        reserve.keep().expect("keep");
        assert_eq!(fs::metadata(reserve.path()).expect("meta").len(), 70_000);
    }
}
