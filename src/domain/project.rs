//! Service objects and projects (contracts).

use super::request::code_enum;
use crate::error::FieldError;
use chrono::NaiveDate;

code_enum!(
    /// Kind of installation at a client site.
    ObjectKind {
        FireAlarm = "fire_alarm",
        Sprinkler = "sprinkler",
        Extinguishers = "extinguishers",
        SmokeExtraction = "smoke_extraction",
        Other = "other",
    }
);

code_enum!(
    /// Contract status.
    ProjectStatus {
        Planned = "planned",
        Active = "active",
        Completed = "completed",
        Cancelled = "cancelled",
    }
);

/// Serial numbers are trimmed; a blank one after trimming is refused (omit it instead).
pub fn serial_number(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    match raw {
        None => Ok(None),
        Some(s) => {
            let t = s.trim();
            if t.is_empty() {
                Err(FieldError::new(
                    "serial_number",
                    "blank",
                    "serial number must not be blank; omit it instead",
                ))
            } else if t.chars().count() > 100 {
                Err(FieldError::new(
                    "serial_number",
                    "too_long",
                    "must be at most 100 characters",
                ))
            } else if t.chars().any(char::is_control) {
                Err(FieldError::new(
                    "serial_number",
                    "invalid_characters",
                    "must be a single line of text",
                ))
            } else {
                Ok(Some(t.to_owned()))
            }
        }
    }
}

/// The end of a contract is not before its start.
pub fn check_dates(start: NaiveDate, end: Option<NaiveDate>) -> Result<(), FieldError> {
    match end {
        Some(e) if e < start => Err(FieldError::new(
            "end_date",
            "before_start",
            "end date is before the start date",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_are_trimmed_and_not_blank() {
        assert_eq!(
            serial_number(Some("  SN-1 ")).unwrap().as_deref(),
            Some("SN-1")
        );
        assert_eq!(serial_number(None).unwrap(), None);
        assert_eq!(serial_number(Some("   ")).unwrap_err().code, "blank");
    }

    #[test]
    fn end_not_before_start() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(check_dates(d("2026-01-01"), Some(d("2026-01-01"))).is_ok());
        assert!(check_dates(d("2026-01-01"), None).is_ok());
        assert_eq!(
            check_dates(d("2026-01-02"), Some(d("2026-01-01")))
                .unwrap_err()
                .code,
            "before_start"
        );
    }
}
