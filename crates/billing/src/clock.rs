//! The billing clock: real time, optionally shifted (to test month rollovers end to end).

use chrono::{DateTime, Datelike, Utc};

/// Tells the time for billing purposes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BillingClock {
    offset_ms: i64,
}

impl BillingClock {
    /// Real time shifted by `offset_ms` (zero in production).
    pub fn shifted(offset_ms: i64) -> BillingClock {
        BillingClock { offset_ms }
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        store::now_millis().saturating_add(self.offset_ms)
    }

    /// The billing month (`YYYY-MM`, UTC) of an instant.
    pub fn month_of(ms: i64) -> String {
        let time: DateTime<Utc> = DateTime::from_timestamp_millis(ms).unwrap_or_default();
        format!("{:04}-{:02}", time.year(), time.month())
    }

    /// The current billing month.
    pub fn month(&self) -> String {
        BillingClock::month_of(self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(BillingClock::month_of(0), "1970-01");
        // 2026-11-30T23:59:59.999Z and one millisecond later.
        assert_eq!(BillingClock::month_of(1_796_083_199_999), "2026-11");
        assert_eq!(BillingClock::month_of(1_796_083_200_000), "2026-12");
    }
}
