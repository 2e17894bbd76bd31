//! What benchmark programs (`examples/*_bench.rs`) share: their `--flag N` arguments and a
//! process's CPU time and memory read from /proc, so that a daemon run as its own process is
//! measured alone.

/// The value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (CPU seconds, RSS MiB) of process `pid`, from /proc; zeros when it cannot be read.
pub fn proc_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces and parentheses: fields are counted after the last ")".
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the ")": state is field 3, utime 14, stime 15 (1-based over the whole line).
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(14) + ticks(15)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, rss_kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_defaults_missing_flags() {
        let (cpu, rss) = proc_usage(std::process::id());
        assert!(cpu >= 0.0);
        assert!(rss > 0.0, "this process has resident memory");
        assert_eq!(proc_usage(u32::MAX), (0.0, 0.0));
        assert_eq!(arg("--no-such-flag", 7), 7);
    }
}
