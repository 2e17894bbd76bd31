//! Cron schedules as Kubernetes evaluates them: five fields (minute hour day-of-month month
//! day-of-week, day-of-month and day-of-week OR-ed as in Vixie cron), the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, evaluated in
//! `spec.timeZone` (an IANA name) or, without one, the controller-manager's local time zone.
//!
//! croner evaluates patterns over chrono date-times; the time zone arithmetic (including DST gaps
//! and folds) is jiff's: the pattern is matched against the wall-clock time of the zone, and a
//! matching wall-clock time is mapped back to an instant with jiff's "compatible" rule (a time in a
//! DST gap happens after the gap, a time in a fold at its first occurrence).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::civil::DateTime as CivilDateTime;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unparseable schedule: {schedule:?} : {reason}")]
    Unparseable { schedule: String, reason: String },
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),
}

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: TimeZone,
}

impl Schedule {
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let tz = match time_zone {
            None => TimeZone::system(),
            Some(name) => {
                TimeZone::get(name).map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))?
            }
        };
        let trimmed = schedule.trim();
        let bad = |reason: String| ScheduleError::Unparseable {
            schedule: schedule.to_string(),
            reason,
        };
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(bad(
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into(),
            ));
        }
        let pattern = if trimmed.eq_ignore_ascii_case("@midnight") {
            "0 0 * * *"
        } else {
            trimmed
        };
        if !pattern.starts_with('@') && pattern.split_whitespace().count() != 5 {
            return Err(bad(format!(
                "expected exactly 5 fields, found {}: {pattern}",
                pattern.split_whitespace().count()
            )));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(pattern).map_err(|e| bad(e.to_string()))?;
        Ok(Schedule { cron, tz })
    }

    fn wall_clock(&self, t: Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
        let civil = t.to_zoned(self.tz.clone()).datetime();
        let naive = chrono::NaiveDate::from_ymd_opt(
            i32::from(civil.year()),
            civil.month() as u32,
            civil.day() as u32,
        )?
        .and_hms_nano_opt(
            civil.hour() as u32,
            civil.minute() as u32,
            civil.second() as u32,
            civil.subsec_nanosecond() as u32,
        )?;
        Some(chrono::DateTime::from_naive_utc_and_offset(
            naive,
            chrono::Utc,
        ))
    }

    fn instant_of(&self, t: chrono::DateTime<chrono::Utc>) -> Option<Timestamp> {
        use chrono::{Datelike, Timelike};
        let civil = CivilDateTime::new(
            i16::try_from(t.year()).ok()?,
            t.month() as i8,
            t.day() as i8,
            t.hour() as i8,
            t.minute() as i8,
            t.second() as i8,
            0,
        )
        .ok()?;
        Some(civil.to_zoned(self.tz.clone()).ok()?.timestamp())
    }

    /// The first scheduled time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut from = self.wall_clock(t)?;
        // Wall-clock times can map back to an instant ≤ t around a DST fold: step past them.
        for _ in 0..4 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            let instant = self.instant_of(next)?;
            if instant > t {
                return Some(instant);
            }
            from = next;
        }
        None
    }

    /// The latest scheduled time at or before `t`.
    pub fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let mut from = self.wall_clock(t)?;
        for _ in 0..4 {
            let prev = self.cron.find_previous_occurrence(&from, true).ok()?;
            let instant = self.instant_of(prev)?;
            if instant <= t {
                return Some(instant);
            }
            from = prev - chrono::Duration::seconds(1);
        }
        None
    }

    /// Kubernetes' `mostRecentScheduleTime`: the latest scheduled time in (`earliest`, `now`] and
    /// how many scheduled times were in that window (capped at 101; more than 100 is "too many missed").
    pub fn most_recent(&self, earliest: Timestamp, now: Timestamp) -> (Option<Timestamp>, u32) {
        let Some(latest) = self.latest_at_or_before(now).filter(|t| *t > earliest) else {
            return (None, 0);
        };
        let mut count = 0;
        let mut t = earliest;
        while let Some(n) = self.next_after(t) {
            if n > now || count > 100 {
                break;
            }
            count += 1;
            t = n;
        }
        (Some(latest), count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn every_minute_in_utc() {
        let s = Schedule::parse("*/1 * * * *", Some("UTC")).expect("parses");
        assert_eq!(
            s.next_after(at("2024-01-01T10:00:30Z")),
            Some(at("2024-01-01T10:01:00Z"))
        );
        assert_eq!(
            s.next_after(at("2024-01-01T10:01:00Z")),
            Some(at("2024-01-01T10:02:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(at("2024-01-01T10:01:00Z")),
            Some(at("2024-01-01T10:01:00Z"))
        );
        let (t, n) = s.most_recent(at("2024-01-01T10:00:00Z"), at("2024-01-01T10:03:10Z"));
        assert_eq!((t, n), (Some(at("2024-01-01T10:03:00Z")), 3));
        assert_eq!(
            s.most_recent(at("2024-01-01T10:03:00Z"), at("2024-01-01T10:03:50Z")),
            (None, 0)
        );
    }

    #[test]
    fn macros_and_time_zones() {
        let daily = Schedule::parse("@daily", Some("Asia/Tokyo")).expect("parses");
        // Midnight in Tokyo is 15:00 UTC the day before.
        assert_eq!(
            daily.next_after(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-01T15:00:00Z"))
        );
        let midnight = Schedule::parse("@midnight", Some("UTC")).expect("parses");
        assert_eq!(
            midnight.next_after(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-02T00:00:00Z"))
        );
        let hourly = Schedule::parse("@hourly", Some("UTC")).expect("parses");
        assert_eq!(
            hourly.next_after(at("2024-03-01T00:00:00Z")),
            Some(at("2024-03-01T01:00:00Z"))
        );
        // 02:30 does not exist on 2024-03-10 in New York (DST gap): it runs after the gap.
        let ny = Schedule::parse("30 2 * * *", Some("America/New_York")).expect("parses");
        assert_eq!(
            ny.next_after(at("2024-03-10T05:00:00Z")),
            Some(at("2024-03-10T07:30:00Z"))
        );
    }

    #[test]
    fn day_of_month_and_week_are_ored_and_names_work() {
        let s = Schedule::parse("0 12 13 * FRI", Some("UTC")).expect("parses");
        // 2024-09-06 is a Friday (before the 13th).
        assert_eq!(
            s.next_after(at("2024-09-01T00:00:00Z")),
            Some(at("2024-09-06T12:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones() {
        assert!(matches!(
            Schedule::parse("* * * *", None),
            Err(ScheduleError::Unparseable { .. })
        ));
        assert!(matches!(
            Schedule::parse("0 * * * * *", None),
            Err(ScheduleError::Unparseable { .. })
        ));
        assert!(matches!(
            Schedule::parse("61 * * * *", None),
            Err(ScheduleError::Unparseable { .. })
        ));
        assert!(matches!(
            Schedule::parse("TZ=UTC * * * * *", None),
            Err(ScheduleError::Unparseable { .. })
        ));
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus")).err(),
            Some(ScheduleError::UnknownTimeZone("Mars/Olympus".into()))
        );
    }
}
