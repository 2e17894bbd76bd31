//! Probe workers: when a container's startup, liveness and readiness probes run, and how their
//! results pass the success/failure thresholds — the kubelet's `prober/worker.go` without the IO.
//! The runtime performs a probe (HTTP GET, TCP connect, exec, with the timeout) and reports
//! success or failure; this module decides when to ask and what the answers mean.

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

use crate::time::{Timestamp, after, secs};

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As Kubernetes names it in events (`Liveness probe failed: ...`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    pub fn lower(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

/// A probe's timing, with Kubernetes' defaults for unset fields (delay 0 s, period 10 s, timeout
/// 1 s, success threshold 1, failure threshold 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// `terminationGracePeriodSeconds` of a liveness/startup probe: overrides the pod's grace when
    /// this probe kills the container.
    pub termination_grace: Option<Duration>,
}

fn positive(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl ProbeTiming {
    pub fn of(probe: &Probe) -> ProbeTiming {
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds.unwrap_or(0).into()),
            period: Duration::from_secs(positive(probe.period_seconds, 10).into()),
            timeout: Duration::from_secs(positive(probe.timeout_seconds, 1).into()),
            success_threshold: positive(probe.success_threshold, 1),
            failure_threshold: positive(probe.failure_threshold, 3),
            termination_grace: probe.termination_grace_period_seconds.map(secs),
        }
    }
}

/// What a probe worker concluded from one more result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed.
    Unchanged,
    /// The settled result flipped (readiness became true/false, startup succeeded).
    Changed(bool),
    /// Liveness or startup reached its failure threshold: the container must be restarted.
    Kill,
}

/// One probe of one container instance.
#[derive(Clone, Debug)]
pub struct ProbeWorker {
    pub kind: ProbeKind,
    pub timing: ProbeTiming,
    /// When the next probe is due (`None` until the container runs).
    pub next_at: Option<Timestamp>,
    pub in_flight: bool,
    last: Option<bool>,
    run: u32,
    /// The settled result: readiness starts false, liveness true, startup false.
    pub result: bool,
    /// After a kill, no more verdicts for this instance (the kubelet's `onHold`).
    on_hold: bool,
}

impl ProbeWorker {
    pub fn new(kind: ProbeKind, timing: ProbeTiming) -> ProbeWorker {
        ProbeWorker {
            kind,
            timing,
            next_at: None,
            in_flight: false,
            last: None,
            run: 0,
            result: kind == ProbeKind::Liveness,
            on_hold: false,
        }
    }

    /// A new container instance started at `started_at`: forget the old one's results and probe
    /// first `initialDelaySeconds` after the start (not before `now`).
    pub fn reset(&mut self, started_at: Timestamp, now: Timestamp) {
        *self = ProbeWorker::new(self.kind, self.timing);
        self.next_at = Some(after(started_at, self.timing.initial_delay).max(now));
    }

    /// Stop probing (the container exited).
    pub fn stop(&mut self) {
        self.next_at = None;
        self.in_flight = false;
        self.result = self.kind == ProbeKind::Liveness;
    }

    /// Whether a probe should be started now.
    pub fn due(&self, now: Timestamp) -> bool {
        !self.in_flight && !self.on_hold && self.next_at.is_some_and(|t| t <= now)
    }

    /// When this worker next needs the clock (`None` while a probe is in flight or on hold).
    pub fn wake(&self) -> Option<Timestamp> {
        if self.in_flight || self.on_hold {
            None
        } else {
            self.next_at
        }
    }

    /// A probe was started at `now`; the next one is due a period later.
    pub fn started(&mut self, now: Timestamp) {
        self.in_flight = true;
        self.next_at = Some(after(now, self.timing.period));
    }

    /// A result arrived. Consecutive equal results are counted; the settled result changes only when
    /// the run reaches the success or failure threshold (prober `worker.doProbe`).
    pub fn record(&mut self, success: bool) -> Verdict {
        self.in_flight = false;
        if self.on_hold || self.next_at.is_none() {
            return Verdict::Unchanged;
        }
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.timing.success_threshold
        } else {
            self.timing.failure_threshold
        };
        if self.run < threshold {
            return Verdict::Unchanged;
        }
        if !success && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            self.on_hold = true;
            self.result = false;
            self.run = 0;
            return Verdict::Kill;
        }
        if self.kind == ProbeKind::Startup && success {
            // A startup probe stops once it has succeeded.
            self.next_at = None;
        }
        if self.result == success {
            Verdict::Unchanged
        } else {
            self.result = success;
            Verdict::Changed(success)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn timing(success: i32, failure: i32) -> ProbeTiming {
        ProbeTiming::of(&Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            ..Probe::default()
        })
    }

    #[test]
    fn defaults_are_kubernetes_defaults() {
        let d = ProbeTiming::of(&Probe::default());
        assert_eq!(d.initial_delay, Duration::ZERO);
        assert_eq!(d.period, Duration::from_secs(10));
        assert_eq!(d.timeout, Duration::from_secs(1));
        assert_eq!((d.success_threshold, d.failure_threshold), (1, 3));
    }

    #[test]
    fn first_probe_after_initial_delay_then_every_period() {
        let mut w = ProbeWorker::new(ProbeKind::Readiness, timing(1, 3));
        assert!(!w.due(t(100)));
        w.reset(t(0), t(0));
        assert!(!w.due(t(4)));
        assert!(w.due(t(5)));
        w.started(t(5));
        assert!(!w.due(t(6)), "in flight");
        assert_eq!(w.record(true), Verdict::Changed(true));
        assert!(!w.due(t(6)));
        assert!(w.due(t(7)));
    }

    #[test]
    fn readiness_thresholds_count_consecutive_results() {
        let mut w = ProbeWorker::new(ProbeKind::Readiness, timing(2, 3));
        w.reset(t(0), t(0));
        assert!(!w.result);
        assert_eq!(w.record(true), Verdict::Unchanged);
        assert_eq!(w.record(false), Verdict::Unchanged);
        assert_eq!(w.record(true), Verdict::Unchanged);
        assert_eq!(w.record(true), Verdict::Changed(true));
        assert_eq!(w.record(false), Verdict::Unchanged);
        assert_eq!(w.record(false), Verdict::Unchanged);
        assert_eq!(w.record(false), Verdict::Changed(false));
        assert_eq!(w.record(false), Verdict::Unchanged);
    }

    #[test]
    fn liveness_kills_at_failure_threshold_once() {
        let mut w = ProbeWorker::new(ProbeKind::Liveness, timing(1, 3));
        w.reset(t(0), t(0));
        assert!(w.result);
        assert_eq!(w.record(false), Verdict::Unchanged);
        assert_eq!(w.record(false), Verdict::Unchanged);
        assert_eq!(w.record(false), Verdict::Kill);
        assert!(!w.due(t(1000)), "on hold until the next instance");
        assert_eq!(w.record(false), Verdict::Unchanged);
        w.reset(t(50), t(50));
        assert!(w.result);
        assert!(w.due(t(55)));
    }

    #[test]
    fn startup_succeeds_once_and_stops() {
        let mut w = ProbeWorker::new(ProbeKind::Startup, timing(1, 3));
        w.reset(t(0), t(0));
        assert_eq!(w.record(false), Verdict::Unchanged);
        assert_eq!(w.record(true), Verdict::Changed(true));
        assert!(!w.due(t(1000)));
    }
}
