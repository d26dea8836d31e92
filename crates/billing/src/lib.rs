//! Billing: the price table, the monthly allowance and the wallet, reservations before billed
//! work and settlement after it, own LLM keys, and the usage report.
//!
//! Architecture invariant: amounts are integer micro-dollars from end to end; the only
//! floating-point numbers are the ones shown to people.

mod clock;
mod prices;
mod service;

pub use clock::BillingClock;
pub use prices::{Allowances, ModelPrice, PriceTable};
pub use service::{
    may_manage_own_keys, Billing, BillingError, Charge, OwnKey, OwnKeyScope, OwnKeyStatus, Payer,
    PlannedReservation, Reservation, UsageReport, UsageSection, DEFAULT_RESERVATION_HOLD,
};
