//! What the kubelet learns about the machine: architecture, kernel, OS image, boot and machine
//! IDs (nodeInfo), and for the process runtime its real capacity and pressure.

use std::path::Path;

use crate::config::Capacity;
use crate::runtime::Pressure;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// `amd64`, `arm64`, ... (Go's names, as Kubernetes uses them).
    pub arch: String,
    pub kernel_version: String,
    pub os_image: String,
    pub boot_id: String,
    pub machine_id: String,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn fnv(data: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl HostInfo {
    pub fn detect() -> HostInfo {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        }
        .to_string();
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".to_string());
        HostInfo {
            arch,
            kernel_version: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
            os_image,
            boot_id: read_trim("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            machine_id: read_trim("/etc/machine-id").unwrap_or_default(),
        }
    }

    /// Fixed values for tests.
    pub fn fake() -> HostInfo {
        HostInfo {
            arch: "amd64".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    /// A machine ID per node (simulated nodes share the host's), 32 hex digits.
    pub fn machine_id_for(&self, node: &str) -> String {
        let seed = format!("{}/{node}", self.machine_id);
        format!(
            "{:016x}{:016x}",
            fnv(seed.as_bytes(), 1),
            fnv(seed.as_bytes(), 2)
        )
    }

    /// A system UUID per node, in UUID form.
    pub fn system_uuid_for(&self, node: &str) -> String {
        let h = self.machine_id_for(&format!("uuid/{node}"));
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

fn meminfo_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The machine's real capacity (process runtime): cores, memory, and the root dir's disk.
pub fn real_capacity(root_dir: &Path, pods: u32) -> Capacity {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = meminfo_kib("MemTotal:")
        .map(|k| format!("{k}Ki"))
        .unwrap_or_else(|| "1Gi".into());
    let disk = disk_stats(root_dir)
        .map(|(total, _)| total.to_string())
        .unwrap_or_else(|| "10Gi".into());
    Capacity {
        cpu: cpus.to_string(),
        memory,
        pods,
        ephemeral_storage: disk,
    }
}

/// (total, available) bytes of the filesystem holding `path` (or its nearest existing parent).
fn disk_stats(path: &Path) -> Option<(u64, u64)> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let st = nix::sys::statvfs::statvfs(p).ok()?;
    let frsize = st.fragment_size() as u64;
    Some((
        st.blocks() as u64 * frsize,
        st.blocks_available() as u64 * frsize,
    ))
}

/// Pressure as the kubelet's default hard eviction thresholds define it: memory.available <
/// 100Mi, nodefs.available < 10%, and (pid) fewer than 5% of pid_max left.
pub fn real_pressure(root_dir: &Path) -> Pressure {
    let memory = meminfo_kib("MemAvailable:").is_some_and(|k| k < 100 * 1024);
    let disk = disk_stats(root_dir).is_some_and(|(total, avail)| total > 0 && avail * 10 < total);
    let pid = (|| {
        let max: u64 = read_trim("/proc/sys/kernel/pid_max")?.parse().ok()?;
        let loadavg = read_trim("/proc/loadavg")?;
        let running: u64 = loadavg
            .split_whitespace()
            .nth(3)?
            .split('/')
            .nth(1)?
            .parse()
            .ok()?;
        Some(running * 20 > max * 19)
    })()
    .unwrap_or(false);
    Pressure { memory, disk, pid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_machine() {
        let h = HostInfo::detect();
        assert!(!h.arch.is_empty());
        assert!(!h.kernel_version.is_empty());
        let c = real_capacity(Path::new("/tmp/does/not/exist"), 110);
        assert!(c.memory.ends_with("Ki"));
        assert_ne!(h.machine_id_for("a"), h.machine_id_for("b"));
        assert_eq!(h.system_uuid_for("a").len(), 36);
        let _ = real_pressure(Path::new("/tmp"));
    }
}
