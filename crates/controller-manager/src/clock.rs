//! The clock the controllers read: the system clock in the daemon, a settable one in tests (the
//! decision cores take `now` as an argument; only the shells ask a clock).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;

/// Wall-clock time for the controllers.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Offset added to the system time, in milliseconds (tests move time forward).
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        let off = self.offset_ms.load(Ordering::Relaxed);
        now.checked_add(jiff::SignedDuration::from_millis(off))
            .unwrap_or(now)
    }

    /// Move this clock (and every clone of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}
