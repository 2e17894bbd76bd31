//! Exponential backoff with jitter, for retrying failed lists and watches. IO-free: it only
//! computes delays.

use std::time::Duration;

/// Delays that double from `initial` up to `max`, each with up to ±25% jitter so that many
/// clients failing together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    jitter: bool,
}

impl Default for Backoff {
    /// kube-rs' watcher default: 800 ms doubling to 30 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(800), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
            jitter: true,
        }
    }

    /// No jitter: exact doublings (for tests and deterministic callers).
    pub fn without_jitter(mut self) -> Backoff {
        self.jitter = false;
        self
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        if !self.jitter {
            return base;
        }
        let factor = 0.75 + rand::random::<f64>() * 0.5;
        base.mul_f64(factor).min(self.max)
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b =
            Backoff::new(Duration::from_millis(100), Duration::from_millis(500)).without_jitter();
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        let mut b = Backoff::new(Duration::from_millis(1000), Duration::from_secs(60));
        let d = b.next_delay();
        assert!(d >= Duration::from_millis(750) && d <= Duration::from_millis(1250));
    }
}
