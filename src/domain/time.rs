//! Timestamps: stored in UTC as fixed-width RFC 3339 text, so they sort and compare as text
//! on every backend.

use crate::error::FieldError;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// The earliest day accepted in any date or moment from outside (inclusive).
pub const MIN_DATE: NaiveDate = ymd(2000, 1, 1);
/// The last day accepted in any date or moment from outside (inclusive). Together with
/// [`MIN_DATE`] it keeps every stored date four-digit, so the fixed-width text of [`to_db`]
/// and [`date_to_db`] stays readable by [`from_db`] and sortable on every backend.
pub const MAX_DATE: NaiveDate = ymd(2199, 12, 31);

const fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => panic!("a valid date"),
    }
}

fn out_of_range(field: &str) -> FieldError {
    FieldError::new(
        field,
        "out_of_range",
        format!("must be between {MIN_DATE} and {MAX_DATE}"),
    )
}

/// A calendar date from outside (a work date, a contract's start or end): refused unless
/// between [`MIN_DATE`] and [`MAX_DATE`] inclusive.
pub fn check_date(field: &str, d: NaiveDate) -> Result<NaiveDate, FieldError> {
    if (MIN_DATE..=MAX_DATE).contains(&d) {
        Ok(d)
    } else {
        Err(out_of_range(field))
    }
}

/// A moment from outside (a request's reported or planned times): refused unless its UTC day
/// is between [`MIN_DATE`] and [`MAX_DATE`] inclusive.
pub fn check_moment(field: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    check_date(field, t.date_naive()).map(|_| t)
}

/// Renders a UTC instant the one way the database stores it: microsecond precision, `Z`.
pub fn to_db(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses what `to_db` wrote.
pub fn from_db(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
}

pub fn date_to_db(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub fn date_from_db(s: &str) -> anyhow::Result<NaiveDate> {
    Ok(NaiveDate::parse_from_str(s, "%Y-%m-%d")?)
}

/// The moment a calendar day begins in a time zone, in UTC (the first moment that exists, on
/// a day whose midnight a clock change skips).
pub fn day_start(tz: chrono_tz::Tz, day: NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    let mut local = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    loop {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(30);
    }
}

/// Serialises timestamps as RFC 3339 UTC with second precision or finer, always `Z`.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn days_begin_at_local_midnight() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(
            day_start(chrono_tz::Europe::Moscow, day),
            Utc.with_ymd_and_hms(2026, 3, 1, 21, 0, 0).unwrap()
        );
        assert_eq!(
            day_start(chrono_tz::UTC, day),
            Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
        );
        // Santiago skipped midnight on 2026-09-06: the day began at 01:00 local.
        let skipped = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        assert_eq!(
            day_start(chrono_tz::America::Santiago, skipped),
            Utc.with_ymd_and_hms(2026, 9, 6, 4, 0, 0).unwrap()
        );
    }

    #[test]
    fn db_text_sorts_like_time() {
        let a = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let b = a + chrono::Duration::microseconds(1);
        let c = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        assert!(to_db(a) < to_db(b));
        assert!(to_db(b) < to_db(c));
        assert_eq!(to_db(a).len(), to_db(c).len());
        assert_eq!(from_db(&to_db(b)).unwrap(), b);
    }
}
