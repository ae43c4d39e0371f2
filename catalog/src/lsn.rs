//! PostgreSQL WAL positions (`pg_lsn`), as Greenplum prints them: `X/Y` in hex.

use std::fmt;
use std::str::FromStr;

/// A WAL position. Differences between two positions are byte counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Lsn(pub u64);

/// Text that is not a WAL position; holds the text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid LSN {0:?}: expected two hexadecimal halves like 0/C0000A8")]
pub struct LsnParseError(pub String);

impl Lsn {
    /// Bytes from `earlier` to `self`, zero when `earlier` is ahead (a mirror can report a
    /// position a moment newer than the primary's snapshot of its own).
    pub fn bytes_since(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || LsnParseError(text.to_string());
        let (high, low) = text.trim().split_once('/').ok_or_else(invalid)?;
        // from_str_radix alone would also take a sign (`+1/0`).
        let hex = |half: &str| {
            !half.is_empty() && half.len() <= 8 && half.bytes().all(|b| b.is_ascii_hexdigit())
        };
        if !hex(high) || !hex(low) {
            return Err(invalid());
        }
        let high = u32::from_str_radix(high, 16).map_err(|_| invalid())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| invalid())?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_positions() {
        assert_eq!("0/C0000A8".parse::<Lsn>(), Ok(Lsn(0xC0000A8)));
        assert_eq!("1/0".parse::<Lsn>(), Ok(Lsn(1 << 32)));
        assert_eq!(
            "0/4A088000".parse::<Lsn>().map(|l| l.to_string()),
            Ok("0/4A088000".into())
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "/",
            "0/",
            "/1",
            "G/1",
            "0/1/2",
            "123456789/0",
            "0x1/2",
            "+1/0",
            "0/+1",
            " 0/ 1",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn differences_never_underflow() {
        let primary: Lsn = "0/4A170000".parse().unwrap();
        let replay: Lsn = "0/4A16CA20".parse().unwrap();
        assert_eq!(primary.bytes_since(replay), 0x4A170000 - 0x4A16CA20);
        assert_eq!(replay.bytes_since(primary), 0);
    }
}
