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

/// Property tests of the date parsing used for API input (serde's RFC 3339 and `YYYY-MM-DD`
/// readings) followed by the range check: never a panic, the range enforced, and whatever is
/// accepted is stored as text the store reads back.
#[cfg(test)]
mod properties {
    use super::*;
    use chrono::{Duration, FixedOffset, TimeZone, Timelike};
    use proptest::prelude::*;

    /// A moment as the API reads it, then checked.
    fn api_moment(raw: &str) -> Option<Result<DateTime<Utc>, FieldError>> {
        let t: DateTime<Utc> = serde_json::from_value(serde_json::Value::from(raw)).ok()?;
        Some(check_moment("planned_start", t))
    }

    /// A date as the API reads it, then checked.
    fn api_date(raw: &str) -> Option<Result<NaiveDate, FieldError>> {
        let d: NaiveDate = serde_json::from_value(serde_json::Value::from(raw)).ok()?;
        Some(check_date("work_date", d))
    }

    fn in_range(d: NaiveDate) -> bool {
        MIN_DATE <= d && d <= MAX_DATE
    }

    fn dateish() -> impl Strategy<Value = String> {
        prop_oneof![
            "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}",
            "[+-]?[0-9]{1,6}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?([Zz]|[+-][0-9]{2}:?[0-9]{2})",
            "[-+0-9:.TZ ]{0,40}",
            any::<String>(),
        ]
    }

    /// Any moment chrono can hold, as seconds from the epoch (about years -262000 to 262000).
    fn any_moment() -> impl Strategy<Value = DateTime<Utc>> {
        let (lo, hi) = (
            DateTime::<Utc>::MIN_UTC.timestamp() + 86_400,
            DateTime::<Utc>::MAX_UTC.timestamp() - 86_400,
        );
        let in_range = (
            ymd(1999, 12, 30)
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp(),
            ymd(2200, 1, 2)
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp(),
        );
        (
            prop_oneof![lo..=hi, in_range.0..=in_range.1],
            0..1_000_000_000_u32,
        )
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
    }

    proptest! {
        #[test]
        fn api_moments_never_panic_and_keep_to_the_range(s in dateish()) {
            if let Some(r) = api_moment(&s) {
                match r {
                    Ok(t) => {
                        prop_assert!(in_range(t.date_naive()), "{:?} -> {}", s, t);
                        // What is stored is read back: no 500 on the way out.
                        let text = to_db(t);
                        prop_assert_eq!(text.len(), "2026-03-02T09:00:00.000000Z".len());
                        prop_assert_eq!(from_db(&text).unwrap(), t.with_nanosecond(t.nanosecond() / 1000 * 1000).unwrap());
                    }
                    Err(e) => {
                        prop_assert_eq!(e.field, "planned_start");
                        prop_assert_eq!(e.code, "out_of_range");
                    }
                }
            }
            let _ = from_db(&s);
        }

        #[test]
        fn api_dates_never_panic_and_keep_to_the_range(s in dateish()) {
            if let Some(r) = api_date(&s) {
                match r {
                    Ok(d) => {
                        prop_assert!(in_range(d));
                        let text = date_to_db(d);
                        prop_assert_eq!(text.len(), 10);
                        prop_assert_eq!(date_from_db(&text).unwrap(), d);
                    }
                    Err(e) => {
                        prop_assert_eq!(e.field, "work_date");
                        prop_assert_eq!(e.code, "out_of_range");
                    }
                }
            }
            let _ = date_from_db(&s);
        }

        #[test]
        fn moments_are_accepted_exactly_within_the_range(
            t in any_moment(),
            offset_minutes in -(14 * 60)..=(14 * 60),
        ) {
            // However the client writes it, in any offset, the UTC day decides.
            let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let written = offset.from_utc_datetime(&t.naive_utc()).to_rfc3339();
            match api_moment(&written) {
                Some(r) => {
                    prop_assert_eq!(r.is_ok(), in_range(t.date_naive()), "{}", written);
                    if let Ok(read) = r {
                        prop_assert_eq!(read, t);
                    }
                }
                // chrono writes years past 9999 that it does not read back; none is in range.
                None => prop_assert!(!in_range(t.date_naive()), "{}", written),
            }
            prop_assert_eq!(check_moment("f", t).is_ok(), in_range(t.date_naive()));
        }

        #[test]
        fn dates_are_accepted_exactly_within_the_range(days in -120_000_i64..120_000) {
            let d = ymd(2000, 1, 1) + Duration::days(days);
            let written = d.format("%Y-%m-%d").to_string();
            match api_date(&written) {
                Some(r) => prop_assert_eq!(r.is_ok(), in_range(d), "{}", written),
                None => prop_assert!(!in_range(d), "{}", written),
            }
            // The first moment of every accepted day exists in every zone.
            if in_range(d) {
                for tz in [chrono_tz::Europe::Moscow, chrono_tz::America::Santiago, chrono_tz::Pacific::Kiritimati] {
                    let start = day_start(tz, d);
                    prop_assert!((start - d.and_hms_opt(0, 0, 0).unwrap().and_utc()).num_hours().abs() <= 15);
                }
            }
        }
    }

    #[test]
    fn the_range_is_inclusive() {
        let at = |y, m, d, h, mi, s| Utc.with_ymd_and_hms(y, m, d, h, mi, s).unwrap();
        assert!(check_moment("f", at(2000, 1, 1, 0, 0, 0)).is_ok());
        assert!(check_moment("f", at(2199, 12, 31, 23, 59, 59)).is_ok());
        assert_eq!(
            check_moment("f", at(1999, 12, 31, 23, 59, 59))
                .unwrap_err()
                .code,
            "out_of_range"
        );
        assert!(check_moment("f", at(2200, 1, 1, 0, 0, 0)).is_err());
        assert!(check_date("f", MIN_DATE).is_ok() && check_date("f", MAX_DATE).is_ok());
        assert!(check_date("f", MIN_DATE.pred_opt().unwrap()).is_err());
        assert!(check_date("f", MAX_DATE.succ_opt().unwrap()).is_err());
        // What the security review sent: read by the API, refused by the range.
        assert_eq!(
            api_moment("+10000-01-01T00:00:00Z")
                .unwrap()
                .unwrap_err()
                .field,
            "planned_start"
        );
        assert!(api_date("+10000-01-01").unwrap().is_err());
    }
}
