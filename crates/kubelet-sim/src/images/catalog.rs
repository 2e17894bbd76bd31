//! What the process runtime runs for a container: Kubernetes' rule (`command` replaces the image's
//! ENTRYPOINT, `args` its CMD) applied to the images niwa knows. A container that sets `command`
//! runs it with this machine's binaries whatever its image; the built-in images run without one;
//! any other image without a command cannot be pulled.

use std::path::Path;

use super::{normalize, short_name};

/// What a known image runs when the container does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownImage {
    pub names: &'static [&'static str],
    /// A built-in image (`niwa-kubelet image <builtin>`); `None`: a shell image.
    pub builtin: Option<&'static str>,
    /// The image's CMD (appended to the entrypoint unless `args` replaces it).
    pub cmd: &'static [&'static str],
}

/// The images niwa runs without a registry.
pub const KNOWN: &[KnownImage] = &[
    KnownImage {
        names: &["nginx"],
        builtin: Some("nginx"),
        cmd: &[],
    },
    KnownImage {
        names: &["httpd"],
        builtin: Some("httpd"),
        cmd: &[],
    },
    KnownImage {
        names: &["agnhost"],
        builtin: Some("agnhost"),
        cmd: &[],
    },
    KnownImage {
        names: &["pause"],
        builtin: Some("pause"),
        cmd: &[],
    },
    // Shell images: the host's /bin/sh and binaries stand in for the image's.
    KnownImage {
        names: &["busybox", "alpine"],
        builtin: None,
        cmd: &["sh"],
    },
    KnownImage {
        names: &["debian", "ubuntu"],
        builtin: None,
        cmd: &["bash"],
    },
];

/// How to run a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Run this argv (argv[0] looked up in the container's PATH).
    Run(Vec<String>),
    /// The image cannot be had: ErrImagePull with this message.
    Unavailable(String),
}

pub fn known(image: &str) -> Option<&'static KnownImage> {
    let name = short_name(image);
    KNOWN.iter().find(|k| k.names.contains(&name))
}

/// The message of ErrImagePull for an image niwa cannot run.
pub fn unavailable_message(image: &str) -> String {
    let names: Vec<&str> = KNOWN.iter().flat_map(|k| k.names.iter().copied()).collect();
    format!(
        "failed to pull and unpack image \"{}\": niwa has no image registry; its process runtime runs containers that set a \
         command (with this machine's binaries) and the built-in images {} (agnhost as in \
         registry.k8s.io/e2e-test-images/agnhost)",
        normalize(image),
        names.join(", ")
    )
}

/// Kubernetes' command/args rule for `image`, with `exe` as the binary of built-in images.
pub fn plan(image: &str, command: &[String], args: &[String], exe: &Path) -> Plan {
    let known = known(image);
    let (entrypoint, cmd): (Vec<String>, Vec<String>) = match known {
        Some(k) => (
            k.builtin
                .map(|b| {
                    vec![
                        exe.display().to_string(),
                        "image".to_string(),
                        b.to_string(),
                    ]
                })
                .unwrap_or_default(),
            k.cmd.iter().map(|s| s.to_string()).collect(),
        ),
        None if !command.is_empty() => (Vec::new(), Vec::new()),
        None => return Plan::Unavailable(unavailable_message(image)),
    };
    // A command naming the image's own binary (`/agnhost serve-hostname`, as Kubernetes' docs
    // write it) runs the built-in with the rest of the command as its arguments.
    let names_builtin = |c: &str| {
        known
            .and_then(|k| k.builtin)
            .is_some_and(|b| c.rsplit('/').next() == Some(b))
    };
    let mut argv = match command.split_first() {
        None => entrypoint,
        Some((first, rest)) if names_builtin(first) => {
            let mut argv = entrypoint;
            argv.extend(rest.iter().cloned());
            argv
        }
        Some(_) => command.to_vec(),
    };
    argv.extend(if args.is_empty() && command.is_empty() {
        cmd
    } else {
        args.to_vec()
    });
    if argv.is_empty() {
        return Plan::Unavailable(unavailable_message(image));
    }
    Plan::Run(argv)
}

/// Kubernetes' `$(VAR)` expansion in command, args and env values: defined variables are
/// replaced, `$$` escapes a `$`, anything else is left as written.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = s[i + 2..].find(')') {
                        let name = &s[i + 2..i + 2 + end];
                        if let Some(v) = lookup(name) {
                            out.push_str(&v);
                            i += end + 3;
                            continue;
                        }
                    }
                }
                _ => {}
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kubernetes_command_and_args_rules() {
        let exe = Path::new("/bin/niwa-kubelet");
        assert_eq!(
            plan("nginx", &[], &[], exe),
            Plan::Run(v(&["/bin/niwa-kubelet", "image", "nginx"]))
        );
        assert_eq!(
            plan(
                "registry.k8s.io/e2e-test-images/agnhost:2.53",
                &[],
                &v(&["netexec", "--http-port=8080"]),
                exe
            ),
            Plan::Run(v(&[
                "/bin/niwa-kubelet",
                "image",
                "agnhost",
                "netexec",
                "--http-port=8080"
            ]))
        );
        assert_eq!(
            plan(
                "registry.k8s.io/e2e-test-images/agnhost:2.53",
                &v(&["/agnhost", "serve-hostname"]),
                &[],
                exe
            ),
            Plan::Run(v(&[
                "/bin/niwa-kubelet",
                "image",
                "agnhost",
                "serve-hostname"
            ]))
        );
        assert_eq!(plan("busybox", &[], &[], exe), Plan::Run(v(&["sh"])));
        assert_eq!(
            plan("busybox", &v(&["sh", "-c"]), &v(&["echo hi"]), exe),
            Plan::Run(v(&["sh", "-c", "echo hi"]))
        );
        assert_eq!(
            plan("busybox", &[], &v(&["echo", "hi"]), exe),
            Plan::Run(v(&["echo", "hi"]))
        );
        assert_eq!(
            plan("myapp:1", &v(&["/usr/bin/env"]), &[], exe),
            Plan::Run(v(&["/usr/bin/env"]))
        );
        let Plan::Unavailable(m) = plan("redis", &[], &[], exe) else {
            panic!("redis should not run")
        };
        assert!(m.starts_with("failed to pull and unpack image \"docker.io/library/redis:latest\": niwa has no image registry"));
        assert!(m.contains("nginx, httpd, agnhost, pause, busybox"));
    }

    #[test]
    fn dollar_paren_expansion() {
        let env = |k: &str| (k == "POD_IP").then(|| "127.244.1.2".to_string());
        assert_eq!(expand("--bind=$(POD_IP):80", env), "--bind=127.244.1.2:80");
        assert_eq!(
            expand("$(UNSET) $$(POD_IP) $HOME", env),
            "$(UNSET) $(POD_IP) $HOME"
        );
        assert_eq!(expand("héllo $(POD_IP", env), "héllo $(POD_IP");
    }
}
