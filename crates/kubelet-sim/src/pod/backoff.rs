//! Restart and image-pull back-off, with the semantics of client-go's `flowcontrol.Backoff` as the
//! kubelet uses it (no jitter):
//!
//! * The first failure is retried at once; the entry then starts at `initial` (10 s).
//! * Each retry that happens while the entry is live doubles it, up to `max` (5 min), so a crashing
//!   container restarts after 0 s, 10 s, 20 s, 40 s, … 5 min, 5 min, …
//! * An entry whose last update is more than `2 × max` (10 min) older than the event is forgotten:
//!   a container that ran for 10 minutes before crashing restarts at once again.

use std::time::Duration;

use crate::time::{Timestamp, after, elapsed};

/// Back-off limits (Kubernetes: 10 s initial, 5 min max for containers and for image pulls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// How long after its last update an entry is forgotten (client-go: twice the maximum).
    pub fn reset_after(&self) -> Duration {
        self.max.saturating_mul(2)
    }
}

/// One item's back-off entry (one per container, keyed by the container in its pod).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    entry: Option<Entry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

impl Backoff {
    /// The current delay (what `back-off 20s restarting failed container` reports), zero when none.
    pub fn delay(&self) -> Duration {
        self.entry.map(|e| e.delay).unwrap_or_default()
    }

    fn expired(entry: &Entry, event: Timestamp, policy: &BackoffPolicy) -> bool {
        elapsed(event, entry.last_update) > policy.reset_after()
    }

    /// client-go `IsInBackOffSince(event)`: true while `now` is less than the current delay after
    /// `event` (for a container: its last `finishedAt`).
    pub fn in_backoff_since(
        &self,
        event: Timestamp,
        now: Timestamp,
        policy: &BackoffPolicy,
    ) -> bool {
        match &self.entry {
            Some(entry) if !Self::expired(entry, event, policy) => {
                elapsed(now, event) < entry.delay
            }
            _ => false,
        }
    }

    /// When the back-off that started at `event` ends (only meaningful while in back-off).
    pub fn until(&self, event: Timestamp) -> Timestamp {
        after(event, self.delay())
    }

    /// client-go `Next(event)`: record a retry at `now`, growing the delay (or starting it afresh
    /// when there was none or it had expired relative to `event`).
    pub fn next(&mut self, event: Timestamp, now: Timestamp, policy: &BackoffPolicy) {
        let delay = match &self.entry {
            Some(entry) if !Self::expired(entry, event, policy) => {
                entry.delay.saturating_mul(2).min(policy.max)
            }
            _ => policy.initial.min(policy.max),
        };
        self.entry = Some(Entry {
            delay,
            last_update: now,
        });
    }

    /// client-go `IsInBackOffSinceUpdate(now)` (image pulls): true while less than the current delay
    /// has passed since the last failure.
    pub fn in_backoff_since_update(&self, now: Timestamp, policy: &BackoffPolicy) -> bool {
        match &self.entry {
            Some(entry) if !Self::expired(entry, now, policy) => {
                elapsed(now, entry.last_update) < entry.delay
            }
            _ => false,
        }
    }

    /// When the current delay since the last update ends.
    pub fn until_since_update(&self) -> Option<Timestamp> {
        self.entry.map(|e| after(e.last_update, e.delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// A container that crashes as soon as it starts: restarts after 0, 10, 20, 40, 80, 160, 300,
    /// 300 s — Kubernetes' CrashLoopBackOff sequence.
    #[test]
    fn crash_loop_delays_double_to_five_minutes() {
        let policy = BackoffPolicy::default();
        let mut b = Backoff::default();
        let mut now = t(0);
        let mut waits = Vec::new();
        for _ in 0..8 {
            let finished = now; // crashed immediately after (re)starting
            let mut wait = 0;
            while b.in_backoff_since(finished, now, &policy) {
                now = after(now, Duration::from_secs(1));
                wait += 1;
            }
            waits.push(wait);
            b.next(finished, now, &policy);
        }
        assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_backoff() {
        let policy = BackoffPolicy::default();
        let mut b = Backoff::default();
        b.next(t(0), t(0), &policy);
        b.next(t(10), t(10), &policy);
        assert_eq!(b.delay(), Duration::from_secs(20));
        // Ran for 601 s after the last restart, then crashed: no back-off, delay starts afresh.
        assert!(!b.in_backoff_since(t(611), t(611), &policy));
        b.next(t(611), t(611), &policy);
        assert_eq!(b.delay(), Duration::from_secs(10));
        // Ran for 599 s: still in back-off.
        let mut b2 = Backoff::default();
        b2.next(t(0), t(0), &policy);
        assert!(b2.in_backoff_since(t(5), t(6), &policy));
    }

    #[test]
    fn configurable_limits() {
        let policy = BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(4),
        };
        let mut b = Backoff::default();
        let mut delays = Vec::new();
        for i in 0..5 {
            b.next(t(i), t(i), &policy);
            delays.push(b.delay().as_secs());
        }
        assert_eq!(delays, vec![1, 2, 4, 4, 4]);
        assert_eq!(policy.reset_after(), Duration::from_secs(8));
    }

    #[test]
    fn image_pull_backoff_since_update() {
        let policy = BackoffPolicy::default();
        let mut b = Backoff::default();
        assert!(!b.in_backoff_since_update(t(0), &policy));
        b.next(t(0), t(0), &policy);
        assert!(b.in_backoff_since_update(t(9), &policy));
        assert!(!b.in_backoff_since_update(t(10), &policy));
        assert_eq!(b.until_since_update(), Some(t(10)));
    }
}
