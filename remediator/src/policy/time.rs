//! Durations (`90s`, `15m`, `1h30m`, `2d`: the workspace's one syntax, parsed by
//! [`greenplum_catalog::parse_duration`]) and weekly time windows, in UTC.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use serde::Deserialize;

/// A policy duration. Parsed at load time so a typo is an error with a line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct PolicyDuration(pub std::time::Duration);

impl PolicyDuration {
    /// The workspace's one duration syntax ([`greenplum_catalog::parse_duration`]: `90s`,
    /// `15m`, `1h30m`, `2d`, `500ms`), also for the remediator's duration flags.
    pub fn parse(text: &str) -> Result<Self, String> {
        greenplum_catalog::parse_duration(text).map(PolicyDuration)
    }

    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl TryFrom<String> for PolicyDuration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        PolicyDuration::parse(&text)
    }
}

impl fmt::Display for PolicyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Day(pub Weekday);

impl TryFrom<String> for Day {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse::<Weekday>()
            .map(Day)
            .map_err(|_| format!("{text:?} is not a day of the week (mon, tue, ...)"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClockTime(pub NaiveTime);

impl TryFrom<String> for ClockTime {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        NaiveTime::parse_from_str(&text, "%H:%M")
            .map(ClockTime)
            .map_err(|_| format!("{text:?} is not a time of day (HH:MM, UTC)"))
    }
}

/// A weekly window in UTC: on `days` (all days when empty), from `start` to `end`. A window
/// whose end is not after its start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default)]
    pub days: Vec<Day>,
    pub start: ClockTime,
    pub end: ClockTime,
}

impl Window {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let time = at.time().with_nanosecond(0).unwrap_or(at.time());
        let on = |day: Weekday| self.days.is_empty() || self.days.iter().any(|d| d.0 == day);
        let (start, end) = (self.start.0, self.end.0);
        if start < end {
            on(at.weekday()) && time >= start && time < end
        } else {
            // Past midnight: the evening part belongs to the listed day, the morning part to
            // the day after it.
            (on(at.weekday()) && time >= start) || (on(at.weekday().pred()) && time < end)
        }
    }
}

pub fn any_contains(windows: &[Window], at: DateTime<Utc>) -> bool {
    windows.iter().any(|w| w.contains(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations() {
        let secs = |t: &str| PolicyDuration::parse(t).expect(t).0.as_secs();
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("15m"), 900);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("2d"), 172_800);
        assert_eq!(secs("0s"), 0);
        for bad in ["", "15", "m", "1x", "1.5h", "-1m"] {
            assert!(PolicyDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_including_past_midnight() {
        let at = |d, h, m| {
            Utc.with_ymd_and_hms(2026, 11, d, h, m, 0)
                .single()
                .expect("t")
        };
        // 2026-11-21 is a Saturday.
        let w = Window {
            days: vec![Day(Weekday::Sat)],
            start: ClockTime::try_from("22:00".to_string()).expect("t"),
            end: ClockTime::try_from("02:00".to_string()).expect("t"),
        };
        assert!(w.contains(at(21, 23, 0)));
        assert!(w.contains(at(22, 1, 59)));
        assert!(!w.contains(at(22, 2, 0)));
        assert!(!w.contains(at(21, 1, 0)));
        assert!(!w.contains(at(22, 23, 0)));
        let day = Window {
            days: vec![],
            start: ClockTime::try_from("09:00".to_string()).expect("t"),
            end: ClockTime::try_from("17:00".to_string()).expect("t"),
        };
        assert!(day.contains(at(23, 9, 0)));
        assert!(!day.contains(at(23, 17, 0)));
        assert!(ClockTime::try_from("25:00".to_string()).is_err());
        assert!(Day::try_from("someday".to_string()).is_err());
    }
}
