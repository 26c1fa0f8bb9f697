//! `MedMij_geboortedatum`: the Vertegenwoordigde's birth date as `JJJJMMDD` (ext.vert.authint.200).

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// A birth date that is a real calendar date written as exactly eight ASCII digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Birthdate(NaiveDate);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BirthdateError {
    /// Not exactly eight characters long.
    Length,
    /// A character that is not an ASCII digit (`٣`, `+`, space, …).
    NotDigits,
    /// Eight digits that name no day (`19700231`, `19000229`), or a year before 1800.
    NotADate,
    /// A day after today: nobody is born in the future.
    Future,
}

impl BirthdateError {
    pub fn describe(self) -> &'static str {
        match self {
            BirthdateError::Length => "MedMij_geboortedatum must be 8 digits (JJJJMMDD)",
            BirthdateError::NotDigits => "MedMij_geboortedatum must be 8 digits (JJJJMMDD)",
            BirthdateError::NotADate => "MedMij_geboortedatum is not a valid date",
            BirthdateError::Future => "MedMij_geboortedatum is in the future",
        }
    }
}

/// The latest calendar date anywhere on Earth at `now` (UTC+14, Kiribati): a birth date is in
/// the future only after it. A child born just after midnight in the Netherlands is born
/// "tomorrow" in UTC, and its PGO may send its birth date at once.
pub fn latest_today(now: chrono::DateTime<chrono::Utc>) -> NaiveDate {
    (now + chrono::Duration::hours(14)).date_naive()
}

/// Years before this are typing errors, not people.
const FIRST_YEAR: i32 = 1800;

impl Birthdate {
    /// Parses `JJJJMMDD` as written by a client: the date must exist and not lie after `today`.
    pub fn parse(text: &str, today: NaiveDate) -> Result<Self, BirthdateError> {
        let date = Self::parse_format(text)?;
        if date.0 > today {
            return Err(BirthdateError::Future);
        }
        Ok(date)
    }

    /// Parses `JJJJMMDD` without the calendar-of-today check (the AS's records, the sealed flow).
    pub fn parse_format(text: &str) -> Result<Self, BirthdateError> {
        let bytes = text.as_bytes();
        if bytes.len() != 8 {
            // Counting bytes: "١٩٧٠٠٩٠١" (Arabic-Indic digits) is 16 bytes, so it lands here or
            // in NotDigits; either way it never reaches the number conversion.
            return Err(if text.chars().count() == 8 {
                BirthdateError::NotDigits
            } else {
                BirthdateError::Length
            });
        }
        if !bytes.iter().all(u8::is_ascii_digit) {
            return Err(BirthdateError::NotDigits);
        }
        let num = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
        };
        Self::from_parts(num(0..4), num(4..6), num(6..8)).ok_or(BirthdateError::NotADate)
    }

    fn from_parts(year: u32, month: u32, day: u32) -> Option<Self> {
        let year = i32::try_from(year).ok().filter(|y| *y >= FIRST_YEAR)?;
        NaiveDate::from_ymd_opt(year, month, day).map(Birthdate)
    }

    /// The date as the number `JJJJMMDD` (compact form inside the sealed state).
    pub fn to_number(self) -> u32 {
        // Years are 1800..=9999 here, so the cast cannot wrap.
        self.0.year() as u32 * 10_000 + self.0.month() * 100 + self.0.day()
    }

    /// The calendar date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    pub fn from_number(n: u32) -> Option<Self> {
        Self::from_parts(n / 10_000, n / 100 % 100, n % 100)
    }
}

impl fmt::Display for Birthdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.to_number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn ext_vert_authint_200_today_is_the_latest_date_on_earth() {
        use chrono::TimeZone;
        // 23:30 UTC on the 27th is 00:30 on the 28th in Amsterdam (CET) and 13:30 on the 28th
        // in Kiribati: a child born in that first half hour is not born in the future.
        let late = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 23, 30, 0)
            .unwrap();
        assert_eq!(latest_today(late), today());
        assert!(Birthdate::parse("20261128", latest_today(late)).is_ok());
        // At 10:00 UTC on the 27th it is midnight at UTC+14: the 28th has begun there, and
        // not a second before.
        let early = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 10, 0, 0)
            .unwrap();
        assert_eq!(latest_today(early), today());
        let earlier = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 9, 59, 59)
            .unwrap();
        assert_eq!(
            latest_today(earlier),
            NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
        );
        assert_eq!(
            Birthdate::parse("20261128", latest_today(earlier)),
            Err(BirthdateError::Future)
        );
    }

    #[test]
    fn ext_vert_authint_200_example_date() {
        let d = Birthdate::parse("19700901", today()).unwrap();
        assert_eq!(d.to_string(), "19700901");
        assert_eq!(d.0, NaiveDate::from_ymd_opt(1970, 9, 1).unwrap());
    }

    #[test]
    fn ext_vert_authint_200_impossible_dates() {
        for bad in [
            "19700231", "19000229", "19701301", "19700001", "19700100", "00000101",
        ] {
            assert_eq!(
                Birthdate::parse(bad, today()),
                Err(BirthdateError::NotADate),
                "{bad}"
            );
        }
    }

    #[test]
    fn ext_vert_authint_200_leap_day_2000_is_valid() {
        assert!(Birthdate::parse("20000229", today()).is_ok());
        assert!(Birthdate::parse("20240229", today()).is_ok());
    }

    #[test]
    fn ext_vert_authint_200_future_dates() {
        assert_eq!(
            Birthdate::parse("20261129", today()),
            Err(BirthdateError::Future)
        );
        assert_eq!(
            Birthdate::parse("99991231", today()),
            Err(BirthdateError::Future)
        );
        assert!(Birthdate::parse("20261128", today()).is_ok(), "born today");
    }

    #[test]
    fn ext_vert_authint_200_length() {
        for bad in ["1970091", "197009011", "", "1970-09-01"] {
            assert_eq!(
                Birthdate::parse(bad, today()),
                Err(BirthdateError::Length),
                "{bad}"
            );
        }
    }

    #[test]
    fn ext_vert_authint_200_non_ascii_digits() {
        // Arabic-Indic and full-width digits are digits to Unicode, not to JJJJMMDD.
        for bad in [
            "١٩٧٠٠٩٠١",
            "１９７００９０１",
            "1970090a",
            "+1970090",
            " 1970090",
        ] {
            let err = Birthdate::parse(bad, today()).unwrap_err();
            assert!(
                matches!(err, BirthdateError::NotDigits | BirthdateError::Length),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(
            Birthdate::parse("1970090a", today()),
            Err(BirthdateError::NotDigits)
        );
    }

    #[test]
    fn number_round_trip() {
        let d = Birthdate::parse("18000101", today()).unwrap();
        assert_eq!(Birthdate::from_number(d.to_number()), Some(d));
        assert_eq!(Birthdate::from_number(19700231), None);
        assert_eq!(Birthdate::from_number(0), None);
    }
}
