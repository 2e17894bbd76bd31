//! In-memory logs for the sim runtime: the last `capacity` CRI records of an instance.

use std::collections::VecDeque;

use parking_lot::Mutex;

use super::{LogError, LogLine, Progress, Source, StreamKind};
use crate::time::Timestamp;

#[derive(Debug)]
pub struct MemoryLog {
    records: Mutex<Records>,
    capacity: usize,
    progress: Progress,
}

#[derive(Debug, Default)]
struct Records {
    /// Sequence number of `lines[0]`.
    first: u64,
    lines: VecDeque<String>,
}

impl MemoryLog {
    pub fn new(capacity: usize) -> MemoryLog {
        MemoryLog {
            records: Mutex::default(),
            capacity: capacity.max(1),
            progress: Progress::default(),
        }
    }

    /// Appends `text` (one record per line).
    pub fn push(&self, time: Timestamp, stream: StreamKind, text: &str) {
        {
            let mut r = self.records.lock();
            for line in text.lines() {
                let record = LogLine {
                    time,
                    stream,
                    partial: false,
                    text: line,
                }
                .format();
                r.lines.push_back(record.trim_end_matches('\n').to_string());
                if r.lines.len() > self.capacity {
                    r.lines.pop_front();
                    r.first += 1;
                }
            }
        }
        self.progress.bump();
    }

    pub fn close(&self) {
        self.progress.close();
    }
}

impl Source for MemoryLog {
    type Cursor = u64;

    fn since(&self, cursor: Option<&u64>) -> Result<(Vec<String>, u64), LogError> {
        let r = self.records.lock();
        let from = cursor.copied().unwrap_or(0);
        let skip = usize::try_from(from.saturating_sub(r.first)).unwrap_or(usize::MAX);
        let out: Vec<String> = r.lines.iter().skip(skip).cloned().collect();
        Ok((out, r.first + r.lines.len() as u64))
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::test_support::{collect, t};
    use super::super::{LogRequest, read_source};
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_and_follows() {
        let log = Arc::new(MemoryLog::new(3));
        log.push(t(), StreamKind::Stdout, "a\nb\nc\nd");
        assert_eq!(
            collect(read_source(log.clone(), LogRequest::default())).await,
            "b\nc\nd\n"
        );
        let follow = read_source(
            log.clone(),
            LogRequest {
                follow: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        );
        let reader = tokio::spawn(collect(follow));
        tokio::task::yield_now().await;
        log.push(t(), StreamKind::Stdout, "e");
        log.close();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        assert_eq!(got.ok().and_then(|r| r.ok()).as_deref(), Some("d\ne\n"));
    }
}
