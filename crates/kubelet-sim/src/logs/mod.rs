//! Container logs, kept the way the kubelet keeps them: one log per container instance, each line
//! in the CRI format (`2026-01-01T00:00:00.123456789Z stdout F hello`), so that `previous`,
//! `timestamps`, `sinceTime`, `tailLines` and `limitBytes` can be answered exactly as Kubernetes
//! answers them. [`file`] writes rotating files (process runtime); [`memory`] keeps a bounded
//! buffer (sim runtime). [`InstanceLog`] is either, and serves reads and follows.

pub mod file;
pub mod memory;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;

use crate::time::Timestamp;

/// Which output a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }
}

/// One CRI log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub time: Timestamp,
    pub stream: StreamKind,
    /// `P`: the line continues in the next record (it was longer than a read); `F`: full.
    pub partial: bool,
    pub text: &'a str,
}

impl LogLine<'_> {
    /// `2026-01-01T00:00:00.123456789Z stdout F text\n`
    pub fn format(&self) -> String {
        format!(
            "{} {} {} {}\n",
            rfc3339_nanos(self.time),
            self.stream.as_str(),
            if self.partial { "P" } else { "F" },
            self.text
        )
    }

    /// Parses one record (without its newline).
    pub fn parse(record: &str) -> Option<LogLine<'_>> {
        let mut parts = record.splitn(4, ' ');
        let time: Timestamp = parts.next()?.parse().ok()?;
        let stream = match parts.next()? {
            "stdout" => StreamKind::Stdout,
            "stderr" => StreamKind::Stderr,
            _ => return None,
        };
        let partial = parts.next()? == "P";
        Some(LogLine {
            time,
            stream,
            partial,
            text: parts.next().unwrap_or(""),
        })
    }
}

/// Go's `time.RFC3339Nano` (nanoseconds with trailing zeros dropped), as the kubelet prints log
/// timestamps (`--timestamps`) and CRI runtimes write them.
pub fn rfc3339_nanos(t: Timestamp) -> String {
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// What a log reader asks for (Kubernetes' PodLogOptions, container already resolved).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<i64>,
    /// Only this stream (`None`: both).
    pub stream: Option<StreamKind>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LogError {
    #[error("container {container:?} in pod {pod:?} is waiting to start: {reason}")]
    Waiting {
        container: String,
        pod: String,
        reason: String,
    },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { container: String, pod: String },
    #[error("container {container:?} is not valid for pod {pod:?}")]
    NoContainer { container: String, pod: String },
    #[error("pod {namespace}/{pod} is not running on this node")]
    NoPod { namespace: String, pod: String },
    #[error("reading the log: {0}")]
    Io(String),
}

/// Log bytes as they come (whole lines, until `limit_bytes` cuts the last one).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, LogError>> + Send>>;

/// Turns CRI records into what the user sees, applying `since`, `stream` and `timestamps`.
/// Partial records are joined without a newline, as the kubelet does.
pub fn render_record(record: &str, request: &LogRequest, out: &mut Vec<u8>) {
    let Some(line) = LogLine::parse(record) else {
        return;
    };
    if request.since.is_some_and(|since| line.time < since) {
        return;
    }
    if request.stream.is_some_and(|s| s != line.stream) {
        return;
    }
    if request.timestamps {
        out.extend_from_slice(rfc3339_nanos(line.time).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(line.text.as_bytes());
    if !line.partial {
        out.push(b'\n');
    }
}

/// The records of a log that a non-following read returns: everything, or the last `tail` lines.
pub fn tail<'a>(records: &'a [&'a str], tail: Option<i64>) -> &'a [&'a str] {
    match tail {
        Some(n) if n >= 0 => {
            let n = usize::try_from(n).unwrap_or(usize::MAX).min(records.len());
            &records[records.len() - n..]
        }
        _ => records,
    }
}

/// Applies `limit_bytes` to a chunk, given how many bytes were sent before; `None` once the limit
/// is reached.
pub fn limit(mut chunk: Vec<u8>, sent: &mut u64, limit: Option<i64>) -> Option<Vec<u8>> {
    if let Some(limit) = limit {
        let limit = u64::try_from(limit).unwrap_or(0);
        if *sent >= limit {
            return None;
        }
        let room = usize::try_from(limit - *sent).unwrap_or(usize::MAX);
        chunk.truncate(room);
    }
    *sent += chunk.len() as u64;
    Some(chunk)
}

/// One container instance's log.
#[derive(Clone, Debug)]
pub enum InstanceLog {
    Memory(Arc<memory::MemoryLog>),
    File(Arc<file::FileLog>),
}

impl InstanceLog {
    /// Marks the instance as ended: followers finish after reading what is there.
    pub fn close(&self) {
        match self {
            InstanceLog::Memory(m) => m.close(),
            InstanceLog::File(f) => f.close(),
        }
    }

    /// Serves a read (and a follow) of this log.
    pub fn read(&self, request: &LogRequest) -> LogStream {
        match self {
            InstanceLog::Memory(m) => read_source(m.clone(), request.clone()),
            InstanceLog::File(f) => read_source(f.clone(), request.clone()),
        }
    }
}

/// Something that holds CRI records and can be followed.
pub trait Source: Send + Sync + 'static {
    /// A position in the log.
    type Cursor: Send + Clone + 'static;
    /// The records from `cursor` on (from the start when `None`), and the cursor after them.
    fn since(&self, cursor: Option<&Self::Cursor>)
    -> Result<(Vec<String>, Self::Cursor), LogError>;
    fn progress(&self) -> &Progress;
    /// Writers in other processes cannot signal progress: followers then poll this often.
    fn poll_interval(&self) -> Option<std::time::Duration> {
        None
    }
}

struct ReadState<S: Source> {
    source: Arc<S>,
    request: LogRequest,
    cursor: S::Cursor,
    sent: u64,
    first: Option<Vec<u8>>,
    changes: watch::Receiver<(u64, bool)>,
}

/// A read of `source`: what is there (tailed), then, when following, new records as they are
/// written until the writer closes the log or the reader goes away.
pub fn read_source<S: Source>(source: Arc<S>, request: LogRequest) -> LogStream {
    let mut changes = source.progress().subscribe();
    changes.borrow_and_update();
    let (records, cursor) = match source.since(None) {
        Ok(r) => r,
        Err(e) => return Box::pin(futures::stream::once(async move { Err(e) })),
    };
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let mut first = Vec::new();
    for r in tail(&refs, request.tail_lines) {
        render_record(r, &request, &mut first);
    }
    let state = ReadState {
        source,
        request,
        cursor,
        sent: 0,
        first: Some(first),
        changes,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        if let Some(first) = s.first.take() {
            let chunk = limit(first, &mut s.sent, s.request.limit_bytes)?;
            if !chunk.is_empty() {
                return Some((Ok(Bytes::from(chunk)), s));
            }
        }
        if !s.request.follow {
            return None;
        }
        loop {
            let closed = s.changes.borrow_and_update().1;
            let (records, cursor) = match s.source.since(Some(&s.cursor)) {
                Ok(r) => r,
                Err(e) => {
                    s.request.follow = false;
                    return Some((Err(e), s));
                }
            };
            s.cursor = cursor;
            let mut out = Vec::new();
            for r in &records {
                render_record(r, &s.request, &mut out);
            }
            if !out.is_empty() {
                let chunk = limit(out, &mut s.sent, s.request.limit_bytes)?;
                return Some((Ok(Bytes::from(chunk)), s));
            }
            if closed {
                return None;
            }
            match s.source.poll_interval() {
                Some(every) => {
                    tokio::select! {
                        changed = s.changes.changed() => if changed.is_err() { return None },
                        _ = tokio::time::sleep(every) => {}
                    }
                }
                None => {
                    if s.changes.changed().await.is_err() {
                        return None;
                    }
                }
            }
        }
    }))
}

/// A change counter followers wait on, plus whether the writer is done.
#[derive(Debug)]
pub struct Progress {
    tx: watch::Sender<(u64, bool)>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            tx: watch::channel((0, false)).0,
        }
    }
}

impl Progress {
    pub fn bump(&self) {
        self.tx.send_modify(|(n, _)| *n += 1);
    }

    pub fn close(&self) {
        self.tx.send_modify(|(n, done)| {
            *n += 1;
            *done = true;
        });
    }

    pub fn closed(&self) -> bool {
        self.tx.borrow().1
    }

    pub fn subscribe(&self) -> watch::Receiver<(u64, bool)> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use futures::StreamExt;

    use super::LogStream;
    use crate::time::Timestamp;

    pub fn t() -> Timestamp {
        Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Everything a log stream yields, as text.
    pub async fn collect(s: LogStream) -> String {
        let chunks: Vec<_> = s.collect().await;
        chunks
            .into_iter()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_round_trip() {
        let t: Timestamp = "2026-01-01T00:00:00.5Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let line = LogLine {
            time: t,
            stream: StreamKind::Stderr,
            partial: false,
            text: "hello world",
        };
        let s = line.format();
        assert_eq!(s, "2026-01-01T00:00:00.5Z stderr F hello world\n");
        assert_eq!(LogLine::parse(s.trim_end_matches('\n')), Some(line));
    }

    #[test]
    fn rendering_applies_options() {
        let records = [
            "2026-01-01T00:00:01.000000000Z stdout F one",
            "2026-01-01T00:00:02.000000000Z stderr F two",
            "2026-01-01T00:00:03.000000000Z stdout P thr",
            "2026-01-01T00:00:03.000000000Z stdout F ee",
        ];
        let render = |req: &LogRequest| {
            let mut out = Vec::new();
            for r in tail(&records, req.tail_lines) {
                render_record(r, req, &mut out);
            }
            String::from_utf8(out).unwrap_or_default()
        };
        assert_eq!(render(&LogRequest::default()), "one\ntwo\nthree\n");
        assert_eq!(
            render(&LogRequest {
                tail_lines: Some(2),
                ..Default::default()
            }),
            "three\n"
        );
        assert_eq!(
            render(&LogRequest {
                stream: Some(StreamKind::Stderr),
                ..Default::default()
            }),
            "two\n"
        );
        let since = "2026-01-01T00:00:02Z".parse().ok();
        assert_eq!(
            render(&LogRequest {
                since,
                ..Default::default()
            }),
            "two\nthree\n"
        );
        assert_eq!(
            render(&LogRequest {
                timestamps: true,
                tail_lines: Some(3),
                ..Default::default()
            }),
            "2026-01-01T00:00:02Z two\n2026-01-01T00:00:03Z thr2026-01-01T00:00:03Z ee\n"
        );
        let mut sent = 0;
        assert_eq!(
            limit(b"hello\n".to_vec(), &mut sent, Some(3)),
            Some(b"hel".to_vec())
        );
        assert_eq!(limit(b"more".to_vec(), &mut sent, Some(3)), None);
    }
}
