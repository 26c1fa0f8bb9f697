//! MedMij 2.x age limits of representation (afsprakenstelsel, *Functies en gegevens
//! Vertegenwoordiging*; change 2.0.0 "0 tot en met 11 jaar"), on when `representation.age_rules`
//! is set:
//!
//! - `onbehalfofchild` (ouderlijk gezag, ext.vert.authint.204): only for a Vertegenwoordigde
//!   **younger than 12**;
//! - `onbehalfof` (a registered machtiging, ext.vert.authint.201): only for a Vertegenwoordigde
//!   **16 or older** (children of 12 to 15 need the consent of parent and child together, which
//!   the afsprakenstelsel does not cover).
//!
//! Ages are whole years on a calendar date in the Netherlands ([`dutch_date`]): a flow at 00:30
//! Dutch time is on that Dutch day, whatever the server's zone. A birthday on 29 February is
//! reached on 1 March in a year without one: the age grows when the calendar has passed the
//! date of birth, and on 28 February it has not (the anniversary day does not exist, and a full
//! year has not gone by until it ends). For the 16-or-older rule this is the cautious reading,
//! one day later and never earlier. Since 12 and 16 are multiples of 4, a leap-day child's 12th
//! and 16th birthdays fall in leap years anyway, except across a century year such as 2100.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Europe::Amsterdam;

use super::{Birthdate, Kind};

/// The calendar date in the Netherlands at `now`.
pub fn dutch_date(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Amsterdam).date_naive()
}

/// Whole years from `birth` to `today` (0 before the first birthday, and for a date of birth
/// after `today`).
pub fn age_on(birth: NaiveDate, today: NaiveDate) -> u32 {
    let years = today.year() - birth.year();
    // Has this year's birthday come? Compared as (month, day); 29 February stands for 1 March
    // in a year without it, which (2, 29) does, since (2, 29) > (2, 28).
    let before_birthday = (today.month(), today.day()) < (birth.month(), birth.day());
    u32::try_from(years - i32::from(before_birthday)).unwrap_or(0)
}

/// Why an age does not fit the representation asked or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeError {
    /// `onbehalfofchild` for a Vertegenwoordigde of 12 or older.
    ChildTooOld,
    /// `onbehalfof` for a Vertegenwoordigde younger than 16.
    TooYoungForMachtiging,
}

impl AgeError {
    /// ASCII, for an `error_description` and the log line.
    pub fn describe(self) -> &'static str {
        match self {
            AgeError::ChildTooOld => {
                "onbehalfofchild is for a represented child younger than 12 (MedMij 2.x)"
            }
            AgeError::TooYoungForMachtiging => {
                "onbehalfof is for a represented person of 16 or older (MedMij 2.x)"
            }
        }
    }

    /// The rule of the representation kind the limit belongs to.
    pub fn rule(self) -> &'static str {
        match self {
            AgeError::ChildTooOld => "ext.vert.authint.204",
            AgeError::TooYoungForMachtiging => "ext.vert.authint.201",
        }
    }
}

/// Whether a Vertegenwoordigde born on `birth` may be represented by `kind` on `today` (a
/// Dutch calendar date).
pub fn check(kind: Kind, birth: Birthdate, today: NaiveDate) -> Result<(), AgeError> {
    let age = age_on(birth.date(), today);
    match kind {
        Kind::OnBehalfOfChild if age >= 12 => Err(AgeError::ChildTooOld),
        Kind::OnBehalfOf if age < 16 => Err(AgeError::TooYoungForMachtiging),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn born(y: i32, m: u32, d: u32) -> Birthdate {
        Birthdate::from_number(y as u32 * 10_000 + m * 100 + d).unwrap()
    }

    #[test]
    fn ages_change_on_the_birthday_itself() {
        let birth = date(2014, 6, 15);
        assert_eq!(age_on(birth, date(2026, 6, 14)), 11, "a day before");
        assert_eq!(age_on(birth, date(2026, 6, 15)), 12, "the birthday");
        assert_eq!(age_on(birth, date(2026, 6, 16)), 12, "a day after");
        assert_eq!(age_on(birth, date(2014, 6, 15)), 0, "born today");
        assert_eq!(age_on(birth, date(2014, 6, 14)), 0, "not yet born");
    }

    #[test]
    fn age_rules_a_leap_day_birthday_is_reached_on_1_march_in_other_years() {
        let birth = date(2012, 2, 29);
        assert_eq!(age_on(birth, date(2024, 2, 28)), 11);
        assert_eq!(
            age_on(birth, date(2024, 2, 29)),
            12,
            "a leap year: the day itself"
        );
        assert_eq!(age_on(birth, date(2023, 2, 28)), 10, "not on 28 February");
        assert_eq!(age_on(birth, date(2023, 3, 1)), 11, "on 1 March");
        // The 12th birthday of a leap-day child falls in a leap year (2024): the day itself.
        let child = born(2012, 2, 29);
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, date(2024, 2, 28)),
            Ok(())
        );
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, date(2024, 2, 29)),
            Err(AgeError::ChildTooOld)
        );
        let leap_teen = born(2012, 2, 29);
        assert_eq!(
            check(Kind::OnBehalfOf, leap_teen, date(2028, 2, 28)),
            Err(AgeError::TooYoungForMachtiging)
        );
        assert_eq!(
            check(Kind::OnBehalfOf, leap_teen, date(2028, 2, 29)),
            Ok(())
        );
        let leap_teen = born(2008, 2, 29);
        assert_eq!(
            check(Kind::OnBehalfOf, leap_teen, date(2024, 2, 28)),
            Err(AgeError::TooYoungForMachtiging)
        );
        assert_eq!(
            check(Kind::OnBehalfOf, leap_teen, date(2024, 2, 29)),
            Ok(())
        );
        // 12 and 16 are multiples of 4, so a leap-day child's 12th and 16th birthdays fall in
        // leap years, except across a century year without 29 February: born 29 February
        // 2088, 12 in 2100, on 1 March.
        let century = born(2088, 2, 29);
        assert_eq!(
            check(Kind::OnBehalfOfChild, century, date(2100, 2, 28)),
            Ok(())
        );
        assert_eq!(
            check(Kind::OnBehalfOfChild, century, date(2100, 3, 1)),
            Err(AgeError::ChildTooOld)
        );
    }

    #[test]
    fn age_rules_onbehalfofchild_only_under_12() {
        let child = born(2014, 6, 15);
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, date(2026, 6, 14)),
            Ok(())
        );
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, date(2026, 6, 15)),
            Err(AgeError::ChildTooOld)
        );
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, date(2026, 6, 16)),
            Err(AgeError::ChildTooOld)
        );
        assert_eq!(
            check(Kind::OnBehalfOfChild, born(2026, 1, 1), date(2026, 1, 1)),
            Ok(())
        );
    }

    #[test]
    fn age_rules_onbehalfof_only_from_16() {
        let person = born(2010, 6, 15);
        assert_eq!(
            check(Kind::OnBehalfOf, person, date(2026, 6, 14)),
            Err(AgeError::TooYoungForMachtiging)
        );
        assert_eq!(check(Kind::OnBehalfOf, person, date(2026, 6, 15)), Ok(()));
        assert_eq!(check(Kind::OnBehalfOf, person, date(2026, 6, 16)), Ok(()));
        assert_eq!(
            check(Kind::OnBehalfOf, born(1970, 9, 1), date(2026, 6, 16)),
            Ok(())
        );
        // 12 to 15: neither kind.
        let between = born(2012, 1, 1);
        assert!(check(Kind::OnBehalfOf, between, date(2026, 6, 1)).is_err());
        assert!(check(Kind::OnBehalfOfChild, between, date(2026, 6, 1)).is_err());
    }

    #[test]
    fn age_rules_the_day_is_the_dutch_calendar_day_whatever_the_server_zone() {
        // 00:30 in Amsterdam in winter (UTC+1) is 23:30 UTC the day before.
        let winter = Utc.with_ymd_and_hms(2026, 1, 14, 23, 30, 0).unwrap();
        assert_eq!(dutch_date(winter), date(2026, 1, 15));
        // And in summer (UTC+2), 22:30 UTC.
        let summer = Utc.with_ymd_and_hms(2026, 6, 14, 22, 30, 0).unwrap();
        assert_eq!(dutch_date(summer), date(2026, 6, 15));
        // A minute before Dutch midnight it is still the day before.
        let before = Utc.with_ymd_and_hms(2026, 6, 14, 21, 59, 0).unwrap();
        assert_eq!(dutch_date(before), date(2026, 6, 14));
        // The 12th birthday begins at Dutch midnight: at 22:30 UTC on the eve, the child is 12.
        let child = born(2014, 6, 15);
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, dutch_date(before)),
            Ok(())
        );
        assert_eq!(
            check(Kind::OnBehalfOfChild, child, dutch_date(summer)),
            Err(AgeError::ChildTooOld)
        );
        // Around the change to summer time (29 March 2026, 02:00 → 03:00).
        let change = Utc.with_ymd_and_hms(2026, 3, 28, 23, 30, 0).unwrap();
        assert_eq!(dutch_date(change), date(2026, 3, 29));
    }
}
