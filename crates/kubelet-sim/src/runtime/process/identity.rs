//! Who a container's process runs as, from the pod's and the container's `securityContext`, as
//! the kubelet and containerd decide it (kubernetes.io "Configure a Security Context for a Pod or
//! Container"). IO-free; [`super::enter`] applies the result just before `exec`, and `kubectl exec`
//! sessions take the running container's identity.
//!
//! * `runAsUser` / `runAsGroup`: the container's value, else the pod's; unset is the image's user,
//!   root (niwa's images have no USER).
//! * Supplementary groups: the primary group, the pod's `fsGroup` and `supplementalGroups`.
//! * `runAsNonRoot: true` refuses to start a container that would run as root, with the
//!   kubelet's messages (CreateContainerConfigError).

use k8s_openapi::api::core::v1::{Container, Pod};
use serde::{Deserialize, Serialize};

/// The user and groups of a container's process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, sorted, including `gid`.
    pub groups: Vec<u32>,
}

fn id(value: Option<i64>, field: &str) -> Result<Option<u32>, String> {
    value
        .map(|v| {
            u32::try_from(v).map_err(|_| format!("{field} {v} is not a valid user or group ID"))
        })
        .transpose()
}

/// The identity of `c`'s process; `None` when nothing in the security contexts asks for one (the
/// process keeps the runtime's user). The error is the CreateContainerConfigError message.
pub fn process_user(pod: &Pod, c: &Container) -> Result<Option<ProcessUser>, String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let uid = id(
        sc.and_then(|s| s.run_as_user)
            .or_else(|| pod_sc.and_then(|s| s.run_as_user)),
        "runAsUser",
    )?;
    let gid = id(
        sc.and_then(|s| s.run_as_group)
            .or_else(|| pod_sc.and_then(|s| s.run_as_group)),
        "runAsGroup",
    )?;
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    let pod_name = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    if non_root {
        match uid {
            None => {
                return Err(format!(
                    "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {})",
                    c.name
                ));
            }
            Some(0) => {
                return Err(format!(
                    "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {})",
                    c.name
                ));
            }
            Some(_) => {}
        }
    }
    let mut extra = Vec::new();
    if let Some(fs_group) = id(pod_sc.and_then(|s| s.fs_group), "fsGroup")? {
        extra.push(fs_group);
    }
    for g in pod_sc
        .and_then(|s| s.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
    {
        extra.extend(id(Some(*g), "supplementalGroups")?);
    }
    if uid.is_none() && gid.is_none() && extra.is_empty() {
        return Ok(None);
    }
    let gid = gid.unwrap_or(0);
    let mut groups = extra;
    groups.push(gid);
    groups.sort_unstable();
    groups.dedup();
    Ok(Some(ProcessUser {
        uid: uid.unwrap_or(0),
        gid,
        groups,
    }))
}

/// The pod's `fsGroup`: the group that owns its writable volumes (emptyDir), with the setgid bit
/// so files made in them belong to it.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()?
        .security_context
        .as_ref()?
        .fs_group
        .and_then(|g| u32::try_from(g).ok())
}

/// The identity of a running process, from `/proc/<pid>/status` (`Uid:`, `Gid:`, `Groups:`
/// lines; the effective IDs): what `kubectl exec` sessions take.
pub fn parse_proc_status(status: &str) -> Option<ProcessUser> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::split_whitespace)
    };
    let uid = field("Uid:")?.nth(1)?.parse().ok()?;
    let gid = field("Gid:")?.nth(1)?.parse().ok()?;
    let groups = field("Groups:")?.filter_map(|g| g.parse().ok()).collect();
    Some(ProcessUser { uid, gid, groups })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "security-context-demo", "namespace": "default", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap_or_default();
        let c = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first().cloned())
            .unwrap_or_default();
        (pod, c)
    }

    #[test]
    fn the_security_context_tutorial() {
        // kubernetes.io: runAsUser 1000, runAsGroup 3000, fsGroup 2000 → `id` shows
        // uid=1000 gid=3000 groups=2000,3000.
        let (p, c) = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            "containers": [{"name": "sec-ctx-demo", "image": "busybox"}],
        }));
        assert_eq!(
            process_user(&p, &c),
            Ok(Some(ProcessUser {
                uid: 1000,
                gid: 3000,
                groups: vec![2000, 3000]
            }))
        );
        assert_eq!(fs_group(&p), Some(2000));
    }

    #[test]
    fn the_container_overrides_the_pod() {
        let (p, c) = pod(json!({
            "securityContext": {"runAsUser": 1000, "supplementalGroups": [4000, 4000]},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 2000}}],
        }));
        assert_eq!(
            process_user(&p, &c),
            Ok(Some(ProcessUser {
                uid: 2000,
                gid: 0,
                groups: vec![0, 4000]
            }))
        );
    }

    #[test]
    fn nothing_asked_keeps_the_runtime_user() {
        let (p, c) = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(process_user(&p, &c), Ok(None));
    }

    #[test]
    fn run_as_non_root_refuses_root_with_the_kubelet_messages() {
        let (p, c) = pod(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c"}],
        }));
        assert_eq!(
            process_user(&p, &c),
            Err(r#"container has runAsNonRoot and image will run as root (pod: "security-context-demo_default(u1)", container: c)"#.to_string())
        );
        let (p, c) = pod(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 0}}],
        }));
        assert_eq!(
            process_user(&p, &c),
            Err(r#"container's runAsUser breaks non-root policy (pod: "security-context-demo_default(u1)", container: c)"#.to_string())
        );
        let (p, c) = pod(json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000},
            "containers": [{"name": "c"}],
        }));
        assert!(matches!(process_user(&p, &c), Ok(Some(u)) if u.uid == 1000));
    }

    #[test]
    fn proc_status_gives_the_effective_ids() {
        let status = "Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\nGid:\t3000\t3000\t3000\t3000\nGroups:\t2000 3000 \n";
        assert_eq!(
            parse_proc_status(status),
            Some(ProcessUser {
                uid: 1000,
                gid: 3000,
                groups: vec![2000, 3000]
            })
        );
    }
}
