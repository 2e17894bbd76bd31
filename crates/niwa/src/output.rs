//! Output formats: kubectl-style tables (columns padded by three spaces, ages as kubectl words
//! them), YAML, JSON (four-space indent, as kubectl) and `kind/name`.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Extra columns (pod IP and node, ...).
    Wide,
    Yaml,
    Json,
    /// `kind/name`, one per line.
    Name,
}

/// The object as YAML (a document without the leading `---`).
pub fn to_yaml(value: &Value) -> String {
    serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n"))
}

/// The object as pretty JSON with kubectl's four-space indent, newline-terminated.
pub fn to_json(value: &Value) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut ser).is_err() {
        return "{}\n".into();
    }
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

/// Several objects as kubectl prints them for `-o yaml|json`: one object alone, more in a `List`.
pub fn list_value(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": {"resourceVersion": ""},
    })
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `15m`, `5h10m`, `20h`, `3d4h`, `40d`, `2y30d`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs_f64().round() as u64;
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let (days, h) = (hours / 24, hours % 24);
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    let years = hours / 24 / 365;
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{days}d")
        };
    }
    format!("{years}y")
}

/// How long ago an RFC 3339 timestamp was, as kubectl prints ages (`<unknown>` if unreadable).
pub fn age(timestamp: Option<&str>, now: jiff::Timestamp) -> String {
    let Some(ts) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = now.as_second() - ts.as_second();
    if secs < -1 {
        return "<invalid>".into();
    }
    human_duration(Duration::from_secs(secs.max(0) as u64))
}

/// A table: header and rows, columns as wide as their widest cell plus three spaces (kubectl's
/// tabwriter). Column widths are kept so that rows printed later (`-w`) line up.
#[derive(Debug, Clone, Default)]
pub struct Table {
    widths: Vec<usize>,
}

impl Table {
    /// Renders `rows` (the header first, if `header` is given), widening columns as needed.
    pub fn render(&mut self, header: Option<&[String]>, rows: &[Vec<String>]) -> String {
        let all = header
            .into_iter()
            .map(|h| h.to_vec())
            .chain(rows.iter().cloned());
        let all: Vec<Vec<String>> = all.collect();
        for row in &all {
            if self.widths.len() < row.len() {
                self.widths.resize(row.len(), 0);
            }
            for (i, cell) in row.iter().enumerate() {
                self.widths[i] = self.widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &all {
            let last = row.len().saturating_sub(1);
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let pad = self.widths[i] - cell.chars().count() + 3;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (200, "3m20s"),
            (240, "4m"),
            (15 * 60, "15m"),
            (179 * 60, "179m"),
            (5 * 3600 + 600, "5h10m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (40 * 86400, "40d"),
            (3 * 365 * 86400 + 30 * 86400, "3y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
        let now: jiff::Timestamp = "2025-01-01T00:10:00Z".parse().expect("ts");
        assert_eq!(age(Some("2025-01-01T00:00:00Z"), now), "10m");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("2025-01-02T00:00:00Z"), now), "<invalid>");
    }

    #[test]
    fn tables_pad_by_three_and_keep_widths() {
        let mut t = Table::default();
        let header = vec!["NAME".to_string(), "AGE".to_string()];
        let text = t.render(Some(&header), &[vec!["web".into(), "5s".into()]]);
        assert_eq!(text, "NAME   AGE\nweb    5s\n");
        let later = t.render(None, &[vec!["a".into(), "1s".into()]]);
        assert_eq!(later, "a      1s\n");
    }

    #[test]
    fn yaml_and_json_rendering() {
        let v = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a"}});
        assert_eq!(
            to_yaml(&v),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n"
        );
        assert!(to_json(&v).contains("\n    \"kind\": \"Pod\""));
        assert_eq!(list_value(vec![v])["kind"], "List");
    }
}
