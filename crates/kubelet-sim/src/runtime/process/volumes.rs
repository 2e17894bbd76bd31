//! Pod volumes on the host: emptyDir directories, configMap/secret/downwardAPI/projected contents
//! written the way the kubelet's atomic writer does (a timestamped directory, a `..data` symlink
//! swapped atomically, one symlink per top-level entry — so a ConfigMap edit appears in running
//! containers all at once), hostPath, and PersistentVolumeClaims bound to hostPath or local
//! PersistentVolumes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use niwa_client::{Api, Client};

use super::env::{field_value, resource_value};
use crate::time::Timestamp;

/// Files of a projected volume: relative path → (content, mode).
pub type Payload = BTreeMap<String, (Vec<u8>, u32)>;

/// Where a volume's content lives on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostVolume {
    pub path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are mounted read-only.
    pub read_only: bool,
    /// Its content comes from API objects and is refreshed.
    pub projected: bool,
}

/// What volume set-up needs besides the pod.
#[derive(Clone, Copy, Debug)]
pub struct VolumeContext<'a> {
    pub client: &'a Client,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub node_cpu: &'a str,
    pub node_memory: &'a str,
}

fn mode(m: Option<i32>, default: i32) -> u32 {
    u32::try_from(m.unwrap_or(default)).unwrap_or(0o644) & 0o7777
}

/// Selects `items` (or every key) of `data` into `out`.
fn select(
    out: &mut Payload,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    kind: &str,
    optional: bool,
) -> Result<(), String> {
    match items {
        None => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        out.insert(
                            item.path.clone(),
                            (
                                v.clone(),
                                item.mode.map_or(default_mode, |m| mode(Some(m), 0o644)),
                            ),
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "{kind} references non-existent config key: {}",
                            item.key
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

async fn config_map_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let api: Api<ConfigMap> = client.namespaced(ns);
    let cm = api.get_opt(name).await.map_err(|e| e.to_string())?;
    Ok(cm.map(|cm| {
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in cm.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}

async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let api: Api<Secret> = client.namespaced(ns);
    let s = api.get_opt(name).await.map_err(|e| e.to_string())?;
    Ok(s.map(|s| {
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        data
    }))
}

/// The files of a configMap/secret/downwardAPI/projected volume (`None` for other kinds).
pub async fn payload(
    volume: &Volume,
    pod: &Pod,
    ctx: &VolumeContext<'_>,
) -> Result<Option<Payload>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Payload::new();
    if let Some(cm) = &volume.config_map {
        let optional = cm.optional.unwrap_or(false);
        match config_map_data(ctx.client, ns, &cm.name).await? {
            Some(data) => select(
                &mut out,
                &data,
                cm.items.as_ref(),
                mode(cm.default_mode, 0o644),
                "configMap",
                optional,
            )?,
            None if optional => {}
            None => return Err(format!("configmap \"{}\" not found", cm.name)),
        }
        return Ok(Some(out));
    }
    if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional.unwrap_or(false);
        match secret_data(ctx.client, ns, &name).await? {
            Some(data) => select(
                &mut out,
                &data,
                s.items.as_ref(),
                mode(s.default_mode, 0o644),
                "secret",
                optional,
            )?,
            None if optional => {}
            None => return Err(format!("secret \"{name}\" not found")),
        }
        return Ok(Some(out));
    }
    if let Some(d) = &volume.downward_api {
        downward(
            &mut out,
            pod,
            d.items.iter().flatten(),
            mode(d.default_mode, 0o644),
            ctx,
        )?;
        return Ok(Some(out));
    }
    if let Some(p) = &volume.projected {
        let default_mode = mode(p.default_mode, 0o644);
        for source in p.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional.unwrap_or(false);
                match config_map_data(ctx.client, ns, &cm.name).await? {
                    Some(data) => select(
                        &mut out,
                        &data,
                        cm.items.as_ref(),
                        default_mode,
                        "configMap",
                        optional,
                    )?,
                    None if optional => {}
                    None => return Err(format!("configmap \"{}\" not found", cm.name)),
                }
            }
            if let Some(s) = &source.secret {
                let optional = s.optional.unwrap_or(false);
                match secret_data(ctx.client, ns, &s.name).await? {
                    Some(data) => select(
                        &mut out,
                        &data,
                        s.items.as_ref(),
                        default_mode,
                        "secret",
                        optional,
                    )?,
                    None if optional => {}
                    None => return Err(format!("secret \"{}\" not found", s.name)),
                }
            }
            if let Some(d) = &source.downward_api {
                downward(&mut out, pod, d.items.iter().flatten(), default_mode, ctx)?;
            }
            if let Some(t) = &source.service_account_token {
                // niwa issues no ServiceAccount tokens yet: the file exists, empty.
                out.insert(t.path.clone(), (Vec::new(), default_mode));
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

fn downward<'a>(
    out: &mut Payload,
    pod: &Pod,
    items: impl Iterator<Item = &'a k8s_openapi::api::core::v1::DownwardAPIVolumeFile>,
    default_mode: u32,
    ctx: &VolumeContext<'_>,
) -> Result<(), String> {
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_value(pod, &f.field_path, ctx.pod_ip, ctx.host_ip)?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let container = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == name)
                .ok_or_else(|| format!("container {name:?} not found"))?;
            resource_value(
                container,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                ctx.node_cpu,
                ctx.node_memory,
            )?
        } else {
            continue;
        };
        out.insert(
            item.path.clone(),
            (
                value.into_bytes(),
                item.mode.map_or(default_mode, |m| mode(Some(m), 0o644)),
            ),
        );
    }
    Ok(())
}

/// Writes `payload` into `dir` atomically (AtomicWriter layout). Returns whether anything changed.
pub fn write_atomic(dir: &Path, payload: &Payload) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    let current = fs::read_link(&data_link).ok().map(|t| dir.join(t));
    if let Some(cur) = &current
        && read_tree(cur).as_ref() == Some(payload)
    {
        return Ok(false);
    }
    let stamp = Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let new_dir = dir.join(&stamp);
    fs::create_dir_all(&new_dir)?;
    for (path, (content, m)) in payload {
        let file = new_dir.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&file, content)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(*m))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    fs::rename(&tmp_link, &data_link)?;
    // One symlink per top-level entry, through ..data.
    let tops: std::collections::BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link)?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    if let Some(old) = current
        && old != new_dir
    {
        let _ = fs::remove_dir_all(old);
    }
    Ok(true)
}

fn read_tree(dir: &Path) -> Option<Payload> {
    fn walk(base: &Path, dir: &Path, out: &mut Payload) -> io::Result<()> {
        for e in fs::read_dir(dir)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out)?;
            } else {
                let rel = p
                    .strip_prefix(base)
                    .map_err(io::Error::other)?
                    .to_string_lossy()
                    .into_owned();
                let m = fs::metadata(&p)?.permissions().mode() & 0o7777;
                out.insert(rel, (fs::read(&p)?, m));
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(dir, dir, &mut out).ok()?;
    Some(out)
}

async fn claim_path(client: &Client, ns: &str, claim: &str) -> Result<PathBuf, String> {
    let pvcs: Api<PersistentVolumeClaim> = client.namespaced(ns);
    let pvc = pvcs
        .get_opt(claim)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    let volume = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" is not bound"))?;
    let pvs: Api<PersistentVolume> = client.cluster();
    let pv = pvs
        .get_opt(&volume)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolume \"{volume}\" not found"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            format!("persistentvolume \"{volume}\": niwa mounts hostPath and local volumes only")
        })?;
    let path = PathBuf::from(path);
    fs::create_dir_all(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
    Ok(path)
}

fn host_path(path: &str, type_: Option<&str>) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "hostPath type check failed: {path} is not a {what}"
            ))
        }
    };
    match type_.unwrap_or("") {
        "DirectoryOrCreate" => fs::create_dir_all(&p).map_err(|e| format!("mkdir {path}: {e}"))?,
        "Directory" => check(p.is_dir(), "directory")?,
        "FileOrCreate" if !p.exists() => {
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
            }
            fs::write(&p, b"").map_err(|e| format!("create {path}: {e}"))?;
        }
        "File" => check(p.is_file(), "file")?,
        "Socket" | "CharDevice" | "BlockDevice" => check(p.exists(), "device or socket")?,
        _ => {}
    }
    Ok(p)
}

/// Sets up every volume of the pod under `volumes_dir`; the error is the FailedMount message.
pub async fn setup(
    volumes_dir: &Path,
    pod: &Pod,
    ctx: &VolumeContext<'_>,
) -> Result<HashMap<String, HostVolume>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let failed =
            |e: String| format!("MountVolume.SetUp failed for volume \"{}\" : {e}", v.name);
        let dir = volumes_dir.join(&v.name);
        let hv = if v.empty_dir.is_some() {
            fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
            // With an fsGroup the directory belongs to that group, setgid so that what the
            // containers write in it does too (the kubelet's volume ownership management).
            let mode = match super::identity::fs_group(pod) {
                Some(group) => {
                    std::os::unix::fs::chown(&dir, None, Some(group))
                        .map_err(|e| failed(format!("chown to fsGroup {group}: {e}")))?;
                    0o2777
                }
                None => 0o777,
            };
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(|e| failed(e.to_string()))?;
            HostVolume {
                path: dir,
                read_only: false,
                projected: false,
            }
        } else if let Some(h) = &v.host_path {
            HostVolume {
                path: host_path(&h.path, h.type_.as_deref()).map_err(failed)?,
                read_only: false,
                projected: false,
            }
        } else if let Some(c) = &v.persistent_volume_claim {
            let path = claim_path(ctx.client, ns, &c.claim_name)
                .await
                .map_err(failed)?;
            HostVolume {
                path,
                read_only: c.read_only.unwrap_or(false),
                projected: false,
            }
        } else if let Some(p) = payload(v, pod, ctx).await.map_err(failed)? {
            write_atomic(&dir, &p).map_err(|e| failed(e.to_string()))?;
            HostVolume {
                path: dir,
                read_only: true,
                projected: true,
            }
        } else {
            return Err(failed(
                "niwa supports emptyDir, configMap, secret, downwardAPI, projected, hostPath and persistentVolumeClaim volumes"
                    .to_string(),
            ));
        };
        out.insert(v.name.clone(), hv);
    }
    Ok(out)
}

/// Re-reads the API objects behind the pod's projected volumes and rewrites those that changed.
pub async fn refresh(volumes_dir: &Path, pod: &Pod, ctx: &VolumeContext<'_>) {
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if v.config_map.is_none()
            && v.secret.is_none()
            && v.projected.is_none()
            && v.downward_api.is_none()
        {
            continue;
        }
        match payload(v, pod, ctx).await {
            Ok(Some(p)) => match write_atomic(&volumes_dir.join(&v.name), &p) {
                Ok(true) => tracing::debug!(volume = %v.name, "volume content updated"),
                Ok(false) => {}
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "cannot update volume"),
            },
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(volume = %v.name, error = %e, "volume source unavailable; keeping old content")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_layout_and_updates() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("config");
        let mut p = Payload::new();
        p.insert("app.conf".into(), (b"a=1\n".to_vec(), 0o644));
        p.insert("sub/inner".into(), (b"x".to_vec(), 0o600));
        assert!(write_atomic(&dir, &p)?);
        assert_eq!(fs::read(dir.join("app.conf"))?, b"a=1\n");
        assert_eq!(fs::read(dir.join("sub/inner"))?, b"x");
        assert_eq!(
            fs::read_link(dir.join("app.conf"))?,
            PathBuf::from("..data/app.conf")
        );
        assert!(
            fs::read_link(dir.join("..data"))?
                .to_string_lossy()
                .starts_with("..")
        );
        assert!(
            !write_atomic(&dir, &p)?,
            "unchanged content is not rewritten"
        );
        let mut q = Payload::new();
        q.insert("app.conf".into(), (b"a=2\n".to_vec(), 0o644));
        assert!(write_atomic(&dir, &q)?);
        assert_eq!(fs::read(dir.join("app.conf"))?, b"a=2\n");
        assert!(!dir.join("sub").exists(), "removed keys disappear");
        let data_dirs = fs::read_dir(&dir)?
            .flatten()
            .filter(|e| e.path().is_dir() && !e.path().is_symlink())
            .count();
        assert_eq!(data_dirs, 1, "old data directory removed");
        Ok(())
    }

    #[test]
    fn host_path_types() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path().join("made");
        assert!(host_path(&d.to_string_lossy(), Some("DirectoryOrCreate")).is_ok());
        assert!(d.is_dir());
        assert!(
            host_path(
                &tmp.path().join("missing").to_string_lossy(),
                Some("Directory")
            )
            .is_err()
        );
        let f = tmp.path().join("f");
        assert!(host_path(&f.to_string_lossy(), Some("FileOrCreate")).is_ok());
        assert!(host_path(&f.to_string_lossy(), Some("File")).is_ok());
        Ok(())
    }
}
