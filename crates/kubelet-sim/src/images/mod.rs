//! Images. niwa has no registry and pulls nothing:
//!
//! * this module: references (how `nginx` becomes `docker.io/library/nginx:latest`) and the
//!   `imageID` niwa reports (`docker.io/library/nginx@sha256:...`, a stable hash of the reference);
//! * [`catalog`]: what the process runtime can run for an image (a command, a built-in image, or
//!   ErrImagePull with a message saying what niwa runs);
//! * [`builtin`]: the built-in images themselves (`niwa-kubelet image nginx|httpd|agnhost|pause`).

pub mod builtin;
pub mod catalog;

/// The fully qualified form of an image reference, as container runtimes report `image`.
pub fn normalize(image: &str) -> String {
    let (name, tag) = split_tag(image);
    let name = match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            name.to_string()
        }
        Some(_) => format!("docker.io/{name}"),
    };
    match tag {
        Some(t) => format!("{name}{t}"),
        None => format!("{name}:latest"),
    }
}

/// `name` and `:tag` / `@digest` (with its separator).
fn split_tag(image: &str) -> (&str, Option<&str>) {
    if let Some(at) = image.find('@') {
        return (&image[..at], Some(&image[at..]));
    }
    let slash = image.rfind('/').map_or(0, |p| p + 1);
    match image[slash..].find(':') {
        Some(colon) => (&image[..slash + colon], Some(&image[slash + colon..])),
        None => (image, None),
    }
}

/// The repository without tag or registry defaults: `nginx:1.27` → `nginx`,
/// `registry.k8s.io/e2e-test-images/agnhost:2.53` → `agnhost`.
pub fn short_name(image: &str) -> &str {
    let (name, _) = split_tag(image);
    name.rsplit('/').next().unwrap_or(name)
}

/// `docker.io/library/nginx@sha256:<64 hex>`, stable for a given reference.
pub fn image_id(image: &str) -> String {
    let normalized = normalize(image);
    let repo = split_tag(&normalized).0.to_string();
    let mut digest = String::with_capacity(64);
    for seed in 0u64..4 {
        // FNV-1a, four differently seeded rounds for 256 bits of stable "digest".
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in normalized.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        digest.push_str(&format!("{h:016x}"));
    }
    format!("{repo}@sha256:{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_container_runtimes() {
        assert_eq!(normalize("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalize("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(normalize("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            normalize("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "registry.k8s.io/e2e-test-images/agnhost:2.53"
        );
        assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            short_name("registry.k8s.io/e2e-test-images/agnhost:2.53"),
            "agnhost"
        );
        assert_eq!(short_name("localhost:5000/app"), "app");
        assert_eq!(short_name("busybox@sha256:abc"), "busybox");
    }

    #[test]
    fn image_ids_are_stable_digests() {
        let id = image_id("nginx");
        assert!(id.starts_with("docker.io/library/nginx@sha256:"));
        assert_eq!(id.len(), "docker.io/library/nginx@sha256:".len() + 64);
        assert_eq!(id, image_id("nginx:latest"));
        assert_ne!(id, image_id("nginx:1.27"));
    }
}
