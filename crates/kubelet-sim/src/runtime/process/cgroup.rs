//! Memory limits: a cgroup per container instance with the container's `limits.memory`, so the
//! kernel OOM-kills a container that exceeds it and the pod reports `OOMKilled`. Uses the cgroup
//! v1 memory controller or cgroup v2, whichever this machine lets niwa write; without either,
//! limits are not enforced (said once in the log).

use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryCgroups {
    V1(PathBuf),
    V2(PathBuf),
    Unavailable(String),
}

impl MemoryCgroups {
    pub fn detect() -> MemoryCgroups {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        if v1.join("memory.limit_in_bytes").exists() {
            let root = v1.join("niwa");
            return match fs::create_dir_all(&root) {
                Ok(()) => MemoryCgroups::V1(root),
                Err(e) => {
                    MemoryCgroups::Unavailable(format!("cannot create {}: {e}", root.display()))
                }
            };
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            let root = v2.join("niwa");
            let made = fs::create_dir_all(&root)
                .and_then(|_| fs::write(v2.join("cgroup.subtree_control"), "+memory"))
                .and_then(|_| fs::write(root.join("cgroup.subtree_control"), "+memory"));
            return match made {
                Ok(()) => MemoryCgroups::V2(root),
                Err(e) => MemoryCgroups::Unavailable(format!(
                    "cannot delegate the memory controller: {e}"
                )),
            };
        }
        MemoryCgroups::Unavailable("no writable memory cgroup controller".to_string())
    }

    /// A cgroup `name` limited to `bytes`.
    pub fn create(&self, name: &str, bytes: u64) -> Result<PathBuf, String> {
        let (dir, file) = match self {
            MemoryCgroups::V1(root) => (root.join(name), "memory.limit_in_bytes"),
            MemoryCgroups::V2(root) => (root.join(name), "memory.max"),
            MemoryCgroups::Unavailable(why) => return Err(why.clone()),
        };
        fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        fs::write(dir.join(file), bytes.to_string()).map_err(|e| format!("set {file}: {e}"))?;
        if let MemoryCgroups::V2(_) = self {
            let _ = fs::write(dir.join("memory.swap.max"), "0");
        }
        Ok(dir)
    }

    /// Removes an instance's cgroup (once its processes are gone).
    pub fn remove(dir: &Path) {
        let _ = fs::remove_dir(dir);
    }
}

/// Whether the kernel OOM-killed a process of this cgroup (v1 `memory.oom_control`, v2
/// `memory.events`).
pub fn oom_killed(dir: &Path) -> bool {
    ["memory.oom_control", "memory.events"].iter().any(|f| {
        fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
            })
            .is_some_and(|n| n > 0)
    })
}
