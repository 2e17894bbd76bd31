//! Looking at pods from outside: which pod served a request, and a container's OS process.

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cluster::Cluster;

/// The pod named in a response of the built-in `nginx`/`httpd` images' default page
/// (`Served by pod <b>NAME</b>`) or, failing that, the whole trimmed body (`serve-hostname`).
pub fn served_by(body: &str) -> String {
    const MARK: &str = "Served by pod <b>";
    match body.find(MARK) {
        Some(i) => {
            let rest = &body[i + MARK.len()..];
            rest[..rest.find('<').unwrap_or(rest.len())].to_string()
        }
        None => body.trim().to_string(),
    }
}

impl Cluster {
    /// The OS pid of a running container: the process runtime records it in
    /// `<data-dir>/nodes/<node>/pods/<uid>/containers/<name>/<instance>/pid`.
    pub async fn container_pid(&self, ns: &str, pod: &str, container: &str) -> Result<i32> {
        let node = self.jsonpath(ns, &["pod", pod], "{.spec.nodeName}").await?;
        let uid = self.jsonpath(ns, &["pod", pod], "{.metadata.uid}").await?;
        let dir = self
            .data_dir()
            .join("nodes")
            .join(&node)
            .join("pods")
            .join(&uid)
            .join("containers")
            .join(container);
        let newest = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .with_context(|| format!("no instance in {}", dir.display()))?;
        let pid_file = dir.join(newest.to_string()).join("pid");
        let text = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        let pid: i32 = text.trim().parse().context("pid file")?;
        if pid <= 0 {
            bail!("bad pid {pid} in {}", pid_file.display());
        }
        Ok(pid)
    }

    /// `kill -9` a container's process.
    pub async fn kill_container(&self, ns: &str, pod: &str, container: &str) -> Result<i32> {
        let pid = self.container_pid(ns, pod, container).await?;
        kill(Pid::from_raw(pid), Signal::SIGKILL).with_context(|| format!("kill -9 {pid}"))?;
        Ok(pid)
    }

    /// `kill -9` a component (e.g. `kubelet-node-1`) by the pid in the state file; answers the pid.
    pub fn kill_component(&self, name: &str) -> Result<u32> {
        self.signal_component(name, Signal::SIGKILL)
    }

    /// Freezes a component with SIGSTOP (a node that stops heartbeating without exiting, so the
    /// supervisor does not restart it) until the guard drops (SIGCONT).
    pub fn freeze_component(&self, name: &str) -> Result<Frozen> {
        let pid = self.signal_component(name, Signal::SIGSTOP)?;
        Ok(Frozen { pid })
    }

    /// Sends `signal` to a component by the pid in the state file; answers the pid.
    pub fn signal_component(&self, name: &str, signal: Signal) -> Result<u32> {
        let state = self.state()?;
        let c = state
            .components
            .iter()
            .find(|c| c.name == name)
            .with_context(|| format!("no component {name}"))?;
        let pid = c.pid.with_context(|| format!("{name} has no pid"))?;
        kill(Pid::from_raw(pid as i32), signal).with_context(|| format!("kill -{signal} {pid}"))?;
        Ok(pid)
    }
}

/// A component stopped with SIGSTOP; dropping this continues it.
#[derive(Debug)]
pub struct Frozen {
    pid: u32,
}

impl Frozen {
    /// Continues the component now.
    pub fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGCONT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_serving_pod() {
        assert_eq!(
            served_by("<p>Served by pod <b>web-1</b> in namespace <b>d</b></p>"),
            "web-1"
        );
        assert_eq!(served_by("foo-pod\n"), "foo-pod");
    }
}
