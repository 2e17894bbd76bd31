//! `niwa-kubelet enter`: the last step before a container's command runs, in the process that
//! becomes the container (so its PID is the container's). With a private root it takes its own
//! mount and UTS namespaces, mounts an overlay of the host's `/` (writes stay private to the
//! instance), binds the host's other mounts and the pod's volumes, `/etc/resolv.conf` and
//! `/etc/hosts` into it, sets the hostname to the pod's name and chroots; then it `exec`s the
//! command. Everything here runs single-threaded, before any other thread exists, which is what
//! `unshare` and `chroot` need.
//!
//! It reports to the shim on stdout: `\0niwa:exec\n` just before `exec`, or
//! `\0niwa:failed:<message>\n` when the container cannot start (the shim turns that into a
//! `StartError`).
//!
//! With `tty`, the shim gives it a terminal, which it makes its controlling terminal first.
//!
//! `enter --join <pid> -- cmd...` runs a command inside a running container instead (exec probes,
//! preStop hooks, `kubectl exec`): its root, hostname, environment and working directory.
//! `enter --join-tty` does the same for `kubectl exec -t`, whose stdin is a terminal: it first
//! becomes a session leader with that terminal as its controlling terminal.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{Gid, Uid, chdir, chroot, setgid, setgroups, sethostname, setuid};

use super::identity::{ProcessUser, parse_proc_status};
use super::layout::{LaunchSpec, PrivateRoot};

/// The marker the shim waits for before it reports the container as started.
pub const EXEC_MARKER: &[u8] = b"\0niwa:exec\n";
/// The prefix of a start failure report.
pub const FAILED_MARKER: &[u8] = b"\0niwa:failed:";

/// Kubernetes' default PATH in containers.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn fail(message: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(FAILED_MARKER);
    let _ = out.write_all(message.replace('\n', " ").as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
    128
}

/// `enter <launch.json>`: set up the container's view and exec its command. Returns only on
/// failure (the exit code to use).
pub fn enter(launch: &Path) -> i32 {
    let spec: LaunchSpec = match fs::read(launch)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot read {}: {e}", launch.display())),
    };
    // `tty: true`: the shim gave us a terminal as stdin, stdout and stderr; as runc does, make it
    // the container's controlling terminal in a session of its own (^C, job control, SIGWINCH).
    if spec.stdio.tty
        && let Err(e) = nix::unistd::setsid()
            .map_err(std::io::Error::from)
            .and_then(|_| rustix::process::ioctl_tiocsctty(std::io::stdin()).map_err(Into::into))
    {
        return fail(&format!(
            "failed to start container process: set up the terminal: {e}"
        ));
    }
    if let Some(cgroup) = &spec.memory_cgroup
        && let Err(e) = fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string())
    {
        return fail(&format!(
            "cannot join memory cgroup {}: {e}",
            cgroup.display()
        ));
    }
    if let Some(root) = &spec.root
        && let Err(e) = private_root(root, &spec.hostname)
    {
        return fail(&e);
    }
    if let Some(dir) = &spec.working_dir {
        if spec.root.is_some() {
            let _ = fs::create_dir_all(dir);
        }
        if let Err(e) = chdir(dir.as_str()) {
            return fail(&format!(
                "failed to start container process: chdir to cwd ({dir:?}) set in config.json failed: {e}"
            ));
        }
    }
    let path = env_path(&spec.env);
    let program = match resolve(&spec.argv, &path) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    if let Some(user) = &spec.user
        && let Err(e) = become_user(user)
    {
        return fail(&format!(
            "failed to start container process: cannot run as user {} group {}: {e}",
            user.uid, user.gid
        ));
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(EXEC_MARKER);
    let _ = out.flush();
    drop(out);
    let err = Command::new(&program)
        .arg0(&spec.argv[0])
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .exec();
    fail(&format!(
        "failed to start container process: exec: {:?}: {err}",
        spec.argv[0]
    ))
}

fn env_path(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| DEFAULT_PATH.to_string())
}

/// argv[0] as an executable path: as given when it has a slash, else searched in `path` —
/// with runc's message when it is not there.
pub fn resolve(argv: &[String], path: &str) -> Result<PathBuf, String> {
    let Some(name) = argv.first().filter(|n| !n.is_empty()) else {
        return Err("failed to start container process: no command specified".to_string());
    };
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        if executable(&p) {
            return Ok(p);
        }
        return Err(format!(
            "failed to start container process: exec: {name:?}: stat {name}: no such file or directory"
        ));
    }
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "failed to start container process: exec: {name:?}: executable file not found in $PATH"
    ))
}

/// A line of /proc/self/mountinfo: mount ID, parent ID, mount point.
#[derive(Debug, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    pub point: PathBuf,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let code = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok());
            if let Some(v) = code {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some(MountInfo {
                id: f.first()?.parse().ok()?,
                parent: f.get(1)?.parse().ok()?,
                point: PathBuf::from(unescape(f.get(4)?)),
            })
        })
        .collect()
}

/// The host's mounts directly under `/` (those must be bound into an overlay of `/`, which only
/// sees the root filesystem itself).
pub fn top_level_mounts(mounts: &[MountInfo]) -> Vec<PathBuf> {
    let Some(root) = mounts
        .iter()
        .filter(|m| m.point == Path::new("/"))
        .map(|m| m.id)
        .max()
    else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.parent == root && m.point != Path::new("/"))
        .map(|m| m.point.clone())
        .collect();
    out.dedup();
    out
}

fn none() -> Option<&'static str> {
    None
}

/// Creates `target` inside the new root as a directory or an empty file, like `source`.
fn make_target(source: &Path, target: &Path) -> Result<(), String> {
    if source.is_dir() {
        fs::create_dir_all(target).map_err(|e| format!("mkdir {}: {e}", target.display()))
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
        }
        if !target.exists() {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(target)
                .map_err(|e| format!("create {}: {e}", target.display()))?;
        }
        Ok(())
    }
}

fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), String> {
    make_target(source, target)?;
    mount(
        Some(source),
        target,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none(),
    )
    .map_err(|e| format!("mount {} at {}: {e}", source.display(), target.display()))?;
    if read_only {
        mount(
            none(),
            target,
            none(),
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
            none(),
        )
        .map_err(|e| format!("remount {} read-only: {e}", target.display()))?;
    }
    Ok(())
}

fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// A container's own /dev: a tmpfs with the usual device nodes bound from the host, the host's
/// devpts, a private /dev/shm and the standard symlinks (what container runtimes give).
fn private_dev(dev: &Path) -> Result<(), String> {
    fs::create_dir_all(dev).map_err(|e| format!("mkdir {}: {e}", dev.display()))?;
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| format!("mount /dev: {e}"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            bind(&host, &dev.join(name), false)?;
        }
    }
    if Path::new("/dev/pts").is_dir() {
        bind(Path::new("/dev/pts"), &dev.join("pts"), false)?;
    }
    let shm = dev.join("shm");
    fs::create_dir_all(&shm).map_err(|e| format!("mkdir {}: {e}", shm.display()))?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| format!("mount /dev/shm: {e}"))?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    Ok(())
}

/// Namespaces, overlay root, bind mounts, hostname, chroot.
fn private_root(root: &PrivateRoot, hostname: &str) -> Result<(), String> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("read mountinfo: {e}"))?;
    let host_mounts = top_level_mounts(&parse_mountinfo(&mountinfo));
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS).map_err(|e| {
        format!("unshare mount namespace: {e} (the process runtime needs root for volume mounts)")
    })?;
    if !hostname.is_empty() {
        sethostname(hostname).map_err(|e| format!("sethostname: {e}"))?;
    }
    mount(
        none(),
        "/",
        none(),
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        none(),
    )
    .map_err(|e| format!("make / private: {e}"))?;
    for dir in [&root.upper, &root.work, &root.merged] {
        fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    let options = format!(
        "lowerdir=/,upperdir={},workdir={}",
        root.upper.display(),
        root.work.display()
    );
    mount(
        Some("overlay"),
        &root.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| format!("overlay root at {}: {e}", root.merged.display()))?;
    for m in &host_mounts {
        if m == Path::new("/dev") {
            private_dev(&root.merged.join("dev"))?;
        } else {
            bind(m, &inside(&root.merged, m), false)?;
        }
    }
    for m in &root.mounts {
        bind(&m.source, &inside(&root.merged, &m.target), m.read_only)?;
    }
    chroot(&root.merged).map_err(|e| format!("chroot {}: {e}", root.merged.display()))?;
    chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// `enter --join <pid> -- argv...`: run `argv` in the running container `pid`. Returns only on
/// failure: 126 when the command cannot run (as `kubectl exec` reports it). With `tty`, stdin is
/// a terminal that becomes the command's controlling terminal (so ^C reaches it).
pub fn join(pid: u32, argv: &[String], tty: bool) -> i32 {
    if tty {
        if let Err(e) = nix::unistd::setsid() {
            return report_exec_failure(&format!("setsid: {e}"));
        }
        if let Err(e) = rustix::process::ioctl_tiocsctty(std::io::stdin()) {
            return report_exec_failure(&format!("set the controlling terminal: {e}"));
        }
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let env: Vec<(String, String)> = fs::read(proc_dir.join("environ"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let cwd = fs::read_link(proc_dir.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
    let own_root = fs::read_link("/proc/self/root").unwrap_or_default();
    let their_root = fs::read_link(proc_dir.join("root")).unwrap_or_default();
    let private = own_root != their_root || namespace_differs(pid, "mnt");
    if private {
        let enter_ns = |name: &str, flag: CloneFlags| -> Result<(), String> {
            let f = File::open(proc_dir.join("ns").join(name))
                .map_err(|e| format!("open {name} namespace: {e}"))?;
            setns(&f, flag).map_err(|e| format!("setns {name}: {e}"))
        };
        let root = match File::open(proc_dir.join("root")) {
            Ok(_) => proc_dir.join("root"),
            Err(e) => return report_exec_failure(&format!("container process {pid} is gone: {e}")),
        };
        if let Err(e) = enter_ns("uts", CloneFlags::CLONE_NEWUTS)
            .and_then(|_| enter_ns("mnt", CloneFlags::CLONE_NEWNS))
        {
            return report_exec_failure(&e);
        }
        if let Err(e) = chroot(&root) {
            return report_exec_failure(&format!("chroot into the container: {e}"));
        }
    }
    let _ = chdir(&cwd).or_else(|_| chdir("/"));
    let program = match resolve(argv, &env_path(&env)) {
        Ok(p) => p,
        Err(e) => return report_exec_failure(&e),
    };
    // The session runs as the container does (its securityContext user and groups).
    let theirs = fs::read_to_string(proc_dir.join("status"))
        .ok()
        .and_then(|s| parse_proc_status(&s));
    let ours = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_proc_status(&s));
    if let Some(user) = theirs.filter(|t| Some(t) != ours.as_ref())
        && let Err(e) = become_user(&user)
    {
        return report_exec_failure(&format!("run as user {} group {}: {e}", user.uid, user.gid));
    }
    let err = Command::new(&program)
        .arg0(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .exec();
    report_exec_failure(&format!("exec: {:?}: {err}", argv[0]))
}

/// Drops to `user`: supplementary groups, then the group, then the user (the order that keeps
/// the privilege each step needs).
fn become_user(user: &ProcessUser) -> nix::Result<()> {
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups)?;
    setgid(Gid::from_raw(user.gid))?;
    setuid(Uid::from_raw(user.uid))
}

fn namespace_differs(pid: u32, ns: &str) -> bool {
    let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok();
    let ours = fs::read_link(format!("/proc/self/ns/{ns}")).ok();
    theirs.is_some() && theirs != ours
}

fn report_exec_failure(message: &str) -> i32 {
    eprintln!(
        "OCI runtime exec failed: exec failed: unable to start container process: {message}: unknown"
    );
    126
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_top_level() {
        let text = "22 27 0:21 / /proc rw - proc proc rw\n\
                    27 1 253:1 / / rw - ext4 /dev/vda rw\n\
                    24 27 0:5 / /dev rw - devtmpfs udev rw\n\
                    25 24 0:22 / /dev/shm rw - tmpfs tmpfs rw\n\
                    42 27 253:1 /x /var/lib/my\\040dir rw - ext4 /dev/vda rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 5);
        assert_eq!(
            top_level_mounts(&mounts),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/dev"),
                PathBuf::from("/var/lib/my dir")
            ]
        );
    }

    #[test]
    fn resolves_like_runc() {
        let argv = |s: &str| vec![s.to_string()];
        assert_eq!(
            resolve(&argv("sh"), DEFAULT_PATH)
                .ok()
                .map(|p| p.is_absolute()),
            Some(true)
        );
        assert_eq!(
            resolve(&argv("no-such-binary"), DEFAULT_PATH),
            Err("failed to start container process: exec: \"no-such-binary\": executable file not found in $PATH".into())
        );
        assert!(
            resolve(&argv("/nope/x"), DEFAULT_PATH)
                .is_err_and(|e| e.contains("no such file or directory"))
        );
        assert!(resolve(&[], DEFAULT_PATH).is_err());
    }
}
