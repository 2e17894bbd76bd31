//! CronJob controller: creates Jobs on a cron schedule (macros, timeZone), with concurrencyPolicy,
//! suspend, startingDeadlineSeconds and history limits. Decisions in [`core`], schedules in
//! [`schedule`].

pub mod core;
pub mod schedule;
