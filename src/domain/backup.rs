//! Backup rules without IO: archive names, which archives retention keeps, and when the daily
//! backup runs next. Time is always a parameter.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use std::collections::BTreeSet;

/// Every archive name starts with this.
pub const PREFIX: &str = "ferum-";
/// Extension of a plain archive.
pub const PLAIN_EXT: &str = ".tar.gz";
/// Extension of an archive encrypted with age.
pub const AGE_EXT: &str = ".tar.gz.age";
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// The file name of an archive taken at `at`: `ferum-20261127T030000Z.tar.gz[.age]`.
pub fn archive_name(at: DateTime<Utc>, encrypted: bool) -> String {
    let ext = if encrypted { AGE_EXT } else { PLAIN_EXT };
    format!("{PREFIX}{}{ext}", at.format(STAMP))
}

/// The time in an archive name, or `None` if the name is not one of ours.
pub fn parse_archive_name(name: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix(PREFIX)?;
    let stamp = rest
        .strip_suffix(AGE_EXT)
        .or_else(|| rest.strip_suffix(PLAIN_EXT))?;
    if stamp.len() != 16 {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
    Some(Utc.from_utc_datetime(&t))
}

/// How many archives retention keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest archive of each of this many most recent days that have one.
    pub daily: usize,
    /// The newest archive of each of this many most recent ISO weeks that have one.
    pub weekly: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            daily: 7,
            weekly: 4,
        }
    }
}

impl Retention {
    /// The names of the archives to delete among `names` (other names are ignored and never
    /// deleted). `keep` (the archive just written) is never deleted, nor is an archive dated
    /// after `now` (a clock that was wrong once should not cost the newest backups).
    pub fn to_delete(&self, names: &[String], keep: &str, now: DateTime<Utc>) -> Vec<String> {
        let mut dated: Vec<(DateTime<Utc>, &str)> = names
            .iter()
            .filter_map(|n| parse_archive_name(n).map(|t| (t, n.as_str())))
            .filter(|(t, _)| *t <= now)
            .collect();
        // Newest first; the name breaks ties so the choice does not depend on input order.
        dated.sort_by(|a, b| b.cmp(a));
        let mut kept: BTreeSet<&str> = BTreeSet::new();
        let mut days: Vec<NaiveDate> = Vec::new();
        let mut weeks: Vec<(i32, u32)> = Vec::new();
        for (t, name) in &dated {
            let day = t.date_naive();
            if !days.contains(&day) && days.len() < self.daily {
                days.push(day);
                kept.insert(name);
            }
            let w = t.iso_week();
            let week = (w.year(), w.week());
            if !weeks.contains(&week) && weeks.len() < self.weekly {
                weeks.push(week);
                kept.insert(name);
            }
        }
        dated
            .iter()
            .filter(|(_, n)| !kept.contains(n) && *n != keep)
            .map(|(_, n)| (*n).to_owned())
            .collect()
    }
}

/// A time of day in UTC, from `FERUM_BACKUP_AT` (`HH:MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay(NaiveTime);

impl TimeOfDay {
    pub fn parse(s: &str) -> Result<TimeOfDay, String> {
        let s = s.trim();
        let ok = s.len() == 5 && s.as_bytes()[2] == b':';
        NaiveTime::parse_from_str(s, "%H:%M")
            .ok()
            .filter(|_| ok)
            .map(TimeOfDay)
            .ok_or_else(|| format!("expected a UTC time of day as HH:MM (e.g. 03:00), got {s:?}"))
    }

    pub fn hm(h: u32, m: u32) -> Option<TimeOfDay> {
        NaiveTime::from_hms_opt(h, m, 0).map(TimeOfDay)
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} UTC", self.0.format("%H:%M"))
    }
}

/// The first moment strictly after `now` at `at` (UTC).
pub fn next_run(now: DateTime<Utc>, at: TimeOfDay) -> DateTime<Utc> {
    let today = Utc.from_utc_datetime(&now.date_naive().and_time(at.0));
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        let at = t("2026-11-27T03:00:00Z");
        assert_eq!(archive_name(at, false), "ferum-20261127T030000Z.tar.gz");
        assert_eq!(archive_name(at, true), "ferum-20261127T030000Z.tar.gz.age");
        assert_eq!(parse_archive_name(&archive_name(at, true)), Some(at));
        assert_eq!(parse_archive_name(&archive_name(at, false)), Some(at));
        for other in [
            "notes.txt",
            "ferum-20261127T030000Z.tar",
            "ferum-2026112T030000Z.tar.gz",
            "ferum-20261127T030000Z.tar.gz.partial",
            "xferum-20261127T030000Z.tar.gz",
        ] {
            assert_eq!(parse_archive_name(other), None, "{other}");
        }
    }

    fn names(times: &[&str]) -> Vec<String> {
        times.iter().map(|s| archive_name(t(s), false)).collect()
    }

    #[test]
    fn keeps_the_newest_of_the_last_seven_days_and_four_weeks() {
        // One archive a day at 03:00 for 60 days, plus a second one on the newest day.
        let start = t("2026-01-01T03:00:00Z");
        let mut all: Vec<String> = (0..60)
            .map(|d| archive_name(start + Duration::days(d), false))
            .collect();
        let last = start + Duration::days(59);
        let extra = archive_name(last + Duration::hours(5), false);
        all.push(extra.clone());
        let now = last + Duration::hours(6);
        let deleted = Retention::default().to_delete(&all, &extra, now);
        let kept: Vec<&String> = all.iter().filter(|n| !deleted.contains(n)).collect();
        // Newest of each of the last 7 days: the extra one replaces the 03:00 one of its day.
        let mut expected: Vec<String> = (53..59)
            .map(|d| archive_name(start + Duration::days(d), false))
            .collect();
        expected.push(extra.clone());
        // Newest of each of the 4 most recent ISO weeks: Sundays before the current week.
        // 2026-03-01 (day 59) is a Sunday, so the current week ends with it.
        for sunday in ["2026-02-22", "2026-02-15", "2026-02-08"] {
            expected.push(archive_name(t(&format!("{sunday}T03:00:00Z")), false));
        }
        expected.sort();
        let mut kept: Vec<String> = kept.into_iter().cloned().collect();
        kept.sort();
        assert_eq!(kept, expected);
        assert_eq!(deleted.len(), all.len() - expected.len());
    }

    #[test]
    fn days_without_a_backup_do_not_count() {
        // Archives on 10 days spread over two months: the 7 newest days that have one stay.
        let all = names(&[
            "2026-01-01T03:00:00Z",
            "2026-01-05T03:00:00Z",
            "2026-01-09T03:00:00Z",
            "2026-01-13T03:00:00Z",
            "2026-01-17T03:00:00Z",
            "2026-01-21T03:00:00Z",
            "2026-01-25T03:00:00Z",
            "2026-01-29T03:00:00Z",
            "2026-02-02T03:00:00Z",
            "2026-02-06T03:00:00Z",
        ]);
        let deleted = Retention::default().to_delete(&all, "", t("2026-02-07T00:00:00Z"));
        // Daily keeps the 7 newest (from 01-13); weekly keeps the newest of weeks 6 to 3, all
        // among them. 01-09, 01-05 (week 2) and 01-01 (week 1) go.
        assert_eq!(
            deleted,
            names(&[
                "2026-01-09T03:00:00Z",
                "2026-01-05T03:00:00Z",
                "2026-01-01T03:00:00Z"
            ])
        );
    }

    #[test]
    fn weekly_reaches_further_back_than_daily() {
        let all = names(&[
            "2026-01-05T03:00:00Z", // week 2
            "2026-01-12T03:00:00Z", // week 3
            "2026-01-19T03:00:00Z", // week 4
            "2026-01-26T03:00:00Z", // week 5
            "2026-02-02T03:00:00Z", // week 6
            "2026-02-03T03:00:00Z",
        ]);
        let r = Retention {
            daily: 1,
            weekly: 4,
        };
        let deleted = r.to_delete(&all, "", t("2026-02-04T00:00:00Z"));
        // Day: 02-03. Weeks 6 (02-03), 5, 4, 3. Week 2 and the older one of week 6 go.
        assert_eq!(
            deleted,
            names(&["2026-02-02T03:00:00Z", "2026-01-05T03:00:00Z"])
        );
    }

    #[test]
    fn the_archive_just_written_and_future_ones_are_never_deleted() {
        let all = names(&[
            "2026-01-01T03:00:00Z",
            "2026-01-02T03:00:00Z",
            "2030-01-01T03:00:00Z",
        ]);
        let r = Retention {
            daily: 1,
            weekly: 0,
        };
        let now = t("2026-01-03T00:00:00Z");
        // Only 01-02 would stay; 01-01 is the one just written, 2030 is in the future.
        assert!(r.to_delete(&all, &all[0], now).is_empty());
        assert_eq!(r.to_delete(&all, "", now), vec![all[0].clone()]);
        // Foreign files in the folder are left alone.
        let mut with_other = all.clone();
        with_other.push("README.txt".into());
        assert_eq!(r.to_delete(&with_other, "", now), vec![all[0].clone()]);
    }

    #[test]
    fn next_run_is_today_if_still_ahead_else_tomorrow() {
        let at = TimeOfDay::parse("03:00").unwrap();
        assert_eq!(
            next_run(t("2026-03-02T01:59:00Z"), at),
            t("2026-03-02T03:00:00Z")
        );
        assert_eq!(
            next_run(t("2026-03-02T03:00:00Z"), at),
            t("2026-03-03T03:00:00Z")
        );
        assert_eq!(
            next_run(
                t("2026-12-31T23:30:00Z"),
                TimeOfDay::parse("00:15").unwrap()
            ),
            t("2027-01-01T00:15:00Z")
        );
    }

    #[test]
    fn time_of_day_is_strict_hh_mm() {
        assert_eq!(
            TimeOfDay::parse(" 23:59 "),
            TimeOfDay::hm(23, 59).ok_or(String::new())
        );
        for bad in ["24:00", "3:00", "03:60", "0300", "03:00:00", "", "noon"] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }
}
