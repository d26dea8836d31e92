//! When schedules fire: 5-field cron expressions (UTC) and fixed intervals.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::command::ScheduleSpec;

/// The `next_at` of a disabled schedule: it keeps its cron expression or interval but never
/// comes due (the scheduler fires schedules in `next_at` order and stops at the first one
/// not due). Enabling it computes its next time afresh.
pub const DISABLED_AT: i64 = i64::MAX;

/// Whether a schedule whose next time is `next_at` is enabled.
pub fn is_enabled(next_at: i64) -> bool {
    next_at != DISABLED_AT
}

/// Checks a cron expression: exactly five fields (minute hour day month weekday).
pub fn check_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "cron expression '{expression}' has {fields} fields; use five: minute hour day-of-month month weekday, e.g. \"0 2 * * *\""
        ));
    }
    Cron::from_str(expression).map_err(|e| format!("invalid cron expression '{expression}': {e}"))
}

/// The first time strictly after `after_ms` at which the schedule fires (milliseconds).
pub fn next_fire(schedule: &ScheduleSpec, after_ms: i64) -> Option<i64> {
    match schedule {
        ScheduleSpec::Every(interval) => {
            let step = i64::try_from(interval.as_millis()).ok()?;
            after_ms.checked_add(step)
        }
        ScheduleSpec::Cron(expression) => {
            let cron = check_cron(expression).ok()?;
            let start: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms)?;
            cron.find_next_occurrence(&start, false)
                .ok()
                .map(|next| next.timestamp_millis())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn intervals_and_cron_expressions_fire_when_expected() {
        assert_eq!(
            next_fire(&ScheduleSpec::Every(Duration::from_secs(30)), 1_000),
            Some(31_000)
        );
        // 2026-11-23T01:30:00Z → the next 02:00 UTC is 30 minutes later.
        let at = DateTime::parse_from_rfc3339("2026-11-23T01:30:00Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        assert_eq!(
            next_fire(&ScheduleSpec::Cron("0 2 * * *".into()), at),
            Some(at + 30 * 60 * 1000)
        );
        assert!(check_cron("0 2 * *").is_err());
        assert!(check_cron("61 2 * * *").is_err());
        assert!(check_cron("*/15 * * * 1-5").is_ok());
    }
}
