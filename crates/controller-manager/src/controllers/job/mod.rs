//! Job controller: runs pods to completion (completions, parallelism, Indexed mode), retries with
//! exponential backoff up to backoffLimit, activeDeadlineSeconds, podFailurePolicy, suspend, and
//! ttlSecondsAfterFinished. Decisions in [`core`].

pub mod core;
