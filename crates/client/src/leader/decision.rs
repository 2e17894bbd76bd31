//! The IO-free core of leader election: given the Lease as read, what this candidate does —
//! client-go's `tryAcquireOrRenew` as a pure function with an injected clock.
//!
//! Expiry is judged on the candidate's own monotonic clock: a lease counts as held until
//! `lease_duration` has passed since this candidate *observed the record change* (not since the
//! record's `renewTime`), so clock skew between machines does not matter.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::time::Instant;

/// The parts of a lease record whose change proves its holder is alive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<MicroTime>,
    pub renew_time: Option<MicroTime>,
    pub transitions: i32,
}

impl Record {
    pub fn from_spec(spec: &LeaseSpec) -> Record {
        Record {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.clone(),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.clone(),
            renew_time: self.renew_time.clone(),
            lease_transitions: Some(self.transitions),
            ..LeaseSpec::default()
        }
    }
}

/// What a candidate last saw of the lease, and when (on its own clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub record: Record,
    pub at: Instant,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No lease exists: create it with this record.
    Create(Record),
    /// Write this record (compare-and-swap on the lease's resourceVersion): a renewal when we
    /// hold the lease, a takeover when it expired or was released.
    Update(Record),
    /// Someone else holds a live lease.
    HeldBy(String),
}

/// Decides what `identity` does about `current` (the lease record as just read, `None` if there
/// is no lease). Updates `observed` when the record changed since the last look.
pub fn decide(
    identity: &str,
    lease_duration: Duration,
    current: Option<Record>,
    observed: &mut Option<Observation>,
    now: Instant,
    wall_now: MicroTime,
) -> Decision {
    let duration_secs = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(current) = current else {
        return Decision::Create(Record {
            holder: identity.to_string(),
            lease_duration_seconds: duration_secs,
            acquire_time: Some(wall_now.clone()),
            renew_time: Some(wall_now),
            transitions: 0,
        });
    };
    if observed.as_ref().is_none_or(|o| o.record != current) {
        *observed = Some(Observation {
            record: current.clone(),
            at: now,
        });
    }
    let seen_at = observed.as_ref().map(|o| o.at).unwrap_or(now);
    let held_for = Duration::from_secs(u64::try_from(current.lease_duration_seconds).unwrap_or(0));
    if !current.holder.is_empty() && current.holder != identity && seen_at + held_for > now {
        return Decision::HeldBy(current.holder);
    }
    let next = if current.holder == identity {
        Record {
            holder: identity.to_string(),
            lease_duration_seconds: duration_secs,
            acquire_time: current.acquire_time.clone(),
            renew_time: Some(wall_now),
            transitions: current.transitions,
        }
    } else {
        Record {
            holder: identity.to_string(),
            lease_duration_seconds: duration_secs,
            acquire_time: Some(wall_now.clone()),
            renew_time: Some(wall_now),
            transitions: current.transitions.saturating_add(1),
        }
    };
    Decision::Update(next)
}

/// The record a leader writes when it steps down: no holder and a 1 s duration, so that the
/// next candidate takes over at once (client-go's `ReleaseOnCancel`).
pub fn released(current: &Record, wall_now: MicroTime) -> Record {
    Record {
        holder: String::new(),
        lease_duration_seconds: 1,
        acquire_time: Some(wall_now.clone()),
        renew_time: Some(wall_now),
        transitions: current.transitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    const LEASE: Duration = Duration::from_secs(15);

    fn wall(secs: i64) -> MicroTime {
        MicroTime(Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn held_by(holder: &str, renewed: i64) -> Record {
        Record {
            holder: holder.into(),
            lease_duration_seconds: 15,
            acquire_time: Some(wall(0)),
            renew_time: Some(wall(renewed)),
            transitions: 3,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_lease_is_created() {
        let mut observed = None;
        let d = decide("a", LEASE, None, &mut observed, Instant::now(), wall(5));
        let Decision::Create(r) = d else {
            panic!("expected create, got {d:?}")
        };
        assert_eq!(r.holder, "a");
        assert_eq!(r.lease_duration_seconds, 15);
        assert_eq!(r.transitions, 0);
        assert_eq!(r.acquire_time, Some(wall(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_holder_renews_keeping_acquire_time_and_transitions() {
        let mut observed = None;
        let d = decide(
            "a",
            LEASE,
            Some(held_by("a", 1)),
            &mut observed,
            Instant::now(),
            wall(9),
        );
        assert_eq!(
            d,
            Decision::Update(Record {
                renew_time: Some(wall(9)),
                ..held_by("a", 1)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_lease_of_another_holder_is_respected_until_it_stops_changing() {
        let mut observed = None;
        let start = Instant::now();
        let d = decide(
            "b",
            LEASE,
            Some(held_by("a", 1)),
            &mut observed,
            start,
            wall(1),
        );
        assert_eq!(d, Decision::HeldBy("a".into()));
        // 14 s later, the same record: still held (15 s lease).
        let d = decide(
            "b",
            LEASE,
            Some(held_by("a", 1)),
            &mut observed,
            start + Duration::from_secs(14),
            wall(15),
        );
        assert_eq!(d, Decision::HeldBy("a".into()));
        // The holder renewed: the clock starts again from this observation.
        let later = start + Duration::from_secs(20);
        let d = decide(
            "b",
            LEASE,
            Some(held_by("a", 19)),
            &mut observed,
            later,
            wall(20),
        );
        assert_eq!(d, Decision::HeldBy("a".into()));
        // No renewal for 15 s after that: expired, b takes over with one more transition.
        let d = decide(
            "b",
            LEASE,
            Some(held_by("a", 19)),
            &mut observed,
            later + LEASE,
            wall(35),
        );
        let Decision::Update(r) = d else {
            panic!("expected takeover, got {d:?}")
        };
        assert_eq!(r.holder, "b");
        assert_eq!(r.transitions, 4);
        assert_eq!(r.acquire_time, Some(wall(35)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_is_taken_at_once() {
        let mut observed = None;
        let released = released(&held_by("a", 1), wall(2));
        assert_eq!(released.holder, "");
        let d = decide(
            "b",
            LEASE,
            Some(released),
            &mut observed,
            Instant::now(),
            wall(2),
        );
        assert!(matches!(d, Decision::Update(r) if r.holder == "b" && r.transitions == 4));
    }
}
