//! A kubeconfig for a niwa cluster: what `niwa up` (and the tests) write so that `kubectl` talks
//! to the apiserver. Plain HTTP and no credentials until authentication exists.

use std::io::Write;
use std::path::Path;

use serde_json::json;

/// What goes into a kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    /// `http://127.0.0.1:6443`
    pub server: String,
    /// Cluster, user and context name (`niwa`).
    pub name: String,
    /// The context's default namespace.
    pub namespace: String,
}

impl Kubeconfig {
    /// A kubeconfig named `niwa` for the apiserver at `addr` (`127.0.0.1:6443`).
    pub fn for_address(addr: std::net::SocketAddr) -> Kubeconfig {
        Kubeconfig {
            server: format!("http://{addr}"),
            name: "niwa".into(),
            namespace: "default".into(),
        }
    }

    /// The kubeconfig as YAML.
    pub fn to_yaml(&self) -> String {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": {"server": self.server}}],
            "users": [{"name": self.name, "user": {}}],
            "contexts": [{"name": self.name, "context": {
                "cluster": self.name, "user": self.name, "namespace": self.namespace}}],
            "current-context": self.name,
            "preferences": {},
        });
        serde_yaml_ng::to_string(&doc).unwrap_or_default()
    }

    /// Writes the kubeconfig to `path` (mode 0600, as kubectl writes its own), creating parent
    /// directories; replaces the file atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(self.to_yaml().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_kubeconfig_kubectl_can_read() {
        let dir = std::env::temp_dir().join(format!("niwa-kubeconfig-{}", std::process::id()));
        let path = dir.join("sub").join("config");
        let kc = Kubeconfig::for_address(
            "127.0.0.1:6443"
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 6443))),
        );
        assert!(kc.write(&path).is_ok());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap_or_default();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:6443"
        );
        assert_eq!(v["current-context"], "niwa");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "default");
        let _ = std::fs::remove_dir_all(dir);
    }
}
