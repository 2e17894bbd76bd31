//! What the Job controller reads from its pods: the tracking finalizer, failed/succeeded as
//! Kubernetes counts them, completion indexes and the index-set notation of
//! `status.completedIndexes`/`failedIndexes`.

use super::*;

/// Whether the pod carries the Job's tracking finalizer.
pub fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

pub(super) fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// Kubernetes' `isPodFailed` (PodReplacementPolicy TerminatingOrFailed): Failed, or deleted before
/// it succeeded (an orphan that will never reach a phase).
pub(super) fn is_failed(p: &Pod) -> bool {
    podutil::phase(p) == "Failed"
        || (podutil::is_terminating(p) && podutil::phase(p) != "Succeeded")
}

pub(super) fn is_succeeded(p: &Pod) -> bool {
    podutil::phase(p) == "Succeeded"
}

/// A pod's completion index (Indexed Jobs).
pub fn completion_index(p: &Pod) -> Option<i32> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX_ANNOTATION))
        .or_else(|| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPLETION_INDEX_ANNOTATION))
        })
        .and_then(|v| v.parse().ok())
}

/// When a finished pod finished: its latest container termination, else its Ready transition.
pub(super) fn finished_at(p: &Pod) -> Option<Timestamp> {
    let st = p.status.as_ref()?;
    let term = st
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0)
        })
        .max();
    term.or_else(|| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
    })
}

/// Parse `completedIndexes` ("1,3-5") into a set.
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok(), b.parse().ok()),
            None => (part.parse().ok(), part.parse().ok()),
        };
        if let (Some(a), Some(b)) = (a, b) {
            for i in a..=b {
                if i >= 0 && i < completions {
                    out.insert(i);
                }
            }
        }
    }
    out
}

/// Format a set of indexes as Kubernetes does ("1,3-5").
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// Pods grouped by their index (for tests and logs).
pub fn pods_by_index<'a>(pods: &[&'a Pod]) -> BTreeMap<i32, Vec<&'a Pod>> {
    let mut m: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        if let Some(i) = completion_index(p) {
            m.entry(i).or_default().push(p);
        }
    }
    m
}
