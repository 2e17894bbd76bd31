//! Rotating CRI log files (the process runtime). The writer runs in the container's shim process
//! (so logs keep flowing while the kubelet restarts); the kubelet reads the files and follows them
//! by polling. Rotation is the kubelet's: when the file passes `max_size` it becomes `<path>.1`
//! (older ones shift up, at most `max_files` kept).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{LogError, LogLine, Progress, Source, StreamKind};
use crate::time::Timestamp;

/// A record longer than this is split into partial (`P`) records, as CRI runtimes do.
pub const MAX_RECORD: usize = 16 * 1024;

/// Rotation limits (the kubelet's `containerLogMaxSize` 10Mi, `containerLogMaxFiles` 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Writes one container instance's CRI log.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn create(path: &Path, rotation: Rotation) -> io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            rotation,
            file,
            size,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Appends output; complete lines become records at once, the rest waits for its newline.
    pub fn write(&mut self, stream: StreamKind, data: &[u8], now: Timestamp) -> io::Result<()> {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + pos];
            self.record(stream, line, false, now)?;
            start += pos + 1;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_RECORD {
            let tail = rest.split_off(MAX_RECORD);
            self.record(stream, &rest, true, now)?;
            rest = tail;
        }
        self.partial[i] = rest;
        Ok(())
    }

    /// Writes out unterminated output (the process ended).
    pub fn flush(&mut self, now: Timestamp) -> io::Result<()> {
        for stream in [StreamKind::Stdout, StreamKind::Stderr] {
            let rest = std::mem::take(&mut self.partial[stream as usize]);
            if !rest.is_empty() {
                self.record(stream, &rest, false, now)?;
            }
        }
        self.file.flush()
    }

    fn record(
        &mut self,
        stream: StreamKind,
        line: &[u8],
        partial: bool,
        now: Timestamp,
    ) -> io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let record = LogLine {
            time: now,
            stream,
            partial,
            text,
        }
        .format();
        self.file.write_all(record.as_bytes())?;
        self.size += record.len() as u64;
        if self.size >= self.rotation.max_size {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_files.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated(&self.path, keep - 1));
        for n in (1..keep - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Reads (and follows) one instance's log files.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    /// Exists once the instance has ended (written by the shim): followers stop there.
    done_marker: PathBuf,
    max_files: usize,
    progress: Progress,
    poll: Duration,
}

/// Where a follower is: the file (by inode) and the offset after the last complete record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileCursor {
    inode: u64,
    offset: u64,
}

impl FileLog {
    pub fn new(path: &Path, done_marker: &Path, rotation: Rotation) -> FileLog {
        FileLog {
            path: path.to_path_buf(),
            done_marker: done_marker.to_path_buf(),
            max_files: rotation.max_files,
            progress: Progress::default(),
            poll: Duration::from_millis(200),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn close(&self) {
        self.progress.close();
    }

    /// Complete records of `path` from `offset`, and the offset after the last of them.
    fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<String>, u64, u64)> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0, 0)),
            Err(e) => return Err(e),
        };
        let inode = file.metadata()?.ino();
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        let text = String::from_utf8_lossy(&buf[..complete]);
        let records = text.lines().map(str::to_string).collect();
        Ok((records, offset + complete as u64, inode))
    }

    fn ended(&self) -> bool {
        self.progress.closed() || self.done_marker.exists()
    }
}

impl Source for FileLog {
    type Cursor = FileCursor;

    fn since(&self, cursor: Option<&FileCursor>) -> Result<(Vec<String>, FileCursor), LogError> {
        let io = |e: io::Error| LogError::Io(e.to_string());
        if self.ended() {
            self.progress.close();
        }
        let mut records = Vec::new();
        match cursor {
            None => {
                for n in (1..self.max_files.max(1)).rev() {
                    records.extend(Self::read_from(&rotated(&self.path, n), 0).map_err(io)?.0);
                }
            }
            Some(c) => {
                let current = fs::metadata(&self.path).map(|m| m.ino()).unwrap_or(0);
                if current != c.inode {
                    // Rotated since: finish the old file (now `.1`), then start the new one.
                    let old = rotated(&self.path, 1);
                    if fs::metadata(&old).map(|m| m.ino()).ok() == Some(c.inode) {
                        records.extend(Self::read_from(&old, c.offset).map_err(io)?.0);
                    }
                    let (more, offset, inode) = Self::read_from(&self.path, 0).map_err(io)?;
                    records.extend(more);
                    return Ok((records, FileCursor { inode, offset }));
                }
                let (more, offset, inode) = Self::read_from(&self.path, c.offset).map_err(io)?;
                records.extend(more);
                return Ok((records, FileCursor { inode, offset }));
            }
        }
        let (more, offset, inode) = Self::read_from(&self.path, 0).map_err(io)?;
        records.extend(more);
        Ok((records, FileCursor { inode, offset }))
    }

    fn progress(&self) -> &Progress {
        &self.progress
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.poll)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::test_support::{collect, t};
    use super::super::{LogRequest, read_source};
    use super::*;

    #[tokio::test]
    async fn writes_rotates_and_reads_across_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 200,
            max_files: 3,
        };
        let mut w = LogWriter::create(&path, rotation)?;
        for i in 0..6 {
            w.write(StreamKind::Stdout, format!("line {i}\n").as_bytes(), t())?;
        }
        w.write(StreamKind::Stderr, b"no newline yet", t())?;
        w.flush(t())?;
        assert!(rotated(&path, 1).exists(), "rotated at 200 bytes");
        let log = Arc::new(FileLog::new(&path, &dir.path().join("done"), rotation));
        let all = collect(read_source(log.clone(), LogRequest::default())).await;
        assert!(all.ends_with("line 5\nno newline yet\n"), "{all}");
        let tail = collect(read_source(
            log,
            LogRequest {
                tail_lines: Some(2),
                ..Default::default()
            },
        ))
        .await;
        assert_eq!(tail, "line 5\nno newline yet\n");
        Ok(())
    }

    #[tokio::test]
    async fn follow_sees_new_lines_and_rotation_and_ends_with_the_instance() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("0.log");
        let done = dir.path().join("done");
        let rotation = Rotation {
            max_size: 120,
            max_files: 2,
        };
        let mut w = LogWriter::create(&path, rotation)?;
        w.write(StreamKind::Stdout, b"first\n", t())?;
        let mut log = FileLog::new(&path, &done, rotation);
        log.poll = Duration::from_millis(20);
        let reader = tokio::spawn(collect(read_source(
            Arc::new(log),
            LogRequest {
                follow: true,
                ..Default::default()
            },
        )));
        tokio::time::sleep(Duration::from_millis(60)).await;
        for i in 0..4 {
            w.write(StreamKind::Stdout, format!("more {i}\n").as_bytes(), t())?;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        fs::write(&done, b"0")?;
        let got = tokio::time::timeout(Duration::from_secs(5), reader).await;
        let got = got.ok().and_then(|r| r.ok()).unwrap_or_default();
        assert_eq!(got, "first\nmore 0\nmore 1\nmore 2\nmore 3\n");
        Ok(())
    }
}
