//! `niwa delete KIND NAME... | KIND/NAME... | -f FILE | KIND -l SEL | KIND --all`, waiting (as
//! kubectl does by default) until the objects are really gone — past finalizers and a pod's
//! graceful termination.

use std::io::{Read, Write};
use std::time::Duration;

use niwa_api::{Registry, ResourceInfo};
use niwa_client::{DeleteParams, DynamicApi, ListParams, Propagation};

use crate::target;
use crate::{CliError, Context, manifest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cascade {
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// `KIND NAME...` or `KIND/NAME...` (or just `KIND` with -l / --all).
    #[arg(value_name = "KIND [NAME]")]
    pub resources: Vec<String>,
    /// Delete the objects these files, directories or stdin (`-`) describe.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Namespace of namespaced kinds (default: `default`).
    #[arg(short = 'n', long, env = "NIWA_NAMESPACE")]
    pub namespace: Option<String>,
    /// With -l or --all: in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Delete the objects of KIND matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of KIND (in the namespace).
    #[arg(long)]
    pub all: bool,
    /// Seconds a pod gets to terminate; -1 uses the pod's own setting.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Delete at once without waiting for the pod to terminate (grace period 0).
    #[arg(long)]
    pub force: bool,
    /// How dependents are deleted.
    #[arg(long, value_enum, default_value = "background")]
    pub cascade: Cascade,
    /// Not finding an object is not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// How long to wait (`30s`, `5m`); 0 waits as long as it takes.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `30s`, `5m`, `1h`, `250ms` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration {text:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// One object to delete.
struct Victim {
    info: &'static ResourceInfo,
    api: DynamicApi,
    name: String,
}

pub async fn run(
    ctx: &Context,
    args: DeleteArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let mut failures = 0usize;
    let victims = collect(ctx, &args, err, &mut failures).await?;
    let mut dp = DeleteParams::default().propagation(match args.cascade {
        Cascade::Background => Propagation::Background,
        Cascade::Foreground => Propagation::Foreground,
        Cascade::Orphan => Propagation::Orphan,
    });
    if args.force {
        dp = dp.grace_period(0);
    } else if args.grace_period >= 0 {
        dp = dp.grace_period(args.grace_period);
    }
    let mut waiting = Vec::new();
    for v in victims {
        match v.api.delete(&v.name, &dp).await {
            Ok(answer) => {
                let _ = writeln!(out, "{} {:?} deleted", target::kind_name(v.info), v.name);
                let uid = answer["metadata"]["uid"].as_str().map(str::to_string);
                let still_there = answer["metadata"]["deletionTimestamp"].is_string();
                if still_there {
                    waiting.push((v, uid));
                }
            }
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e) => {
                failures += 1;
                let _ = writeln!(err, "{}", ctx.describe(&e));
            }
        }
    }
    let _ = out.flush();
    if args.wait {
        let deadline =
            (!args.timeout.is_zero()).then(|| tokio::time::Instant::now() + args.timeout);
        for (v, uid) in waiting {
            if let Err(message) = wait_gone(&v, uid.as_deref(), deadline).await {
                failures += 1;
                let _ = writeln!(err, "{message}");
            }
        }
    }
    if failures > 0 {
        return Err(CliError::Failed(format!("{failures} deletions failed")));
    }
    Ok(())
}

/// The objects the arguments name.
async fn collect(
    ctx: &Context,
    args: &DeleteArgs,
    err: &mut dyn Write,
    failures: &mut usize,
) -> Result<Vec<Victim>, CliError> {
    let mut victims = Vec::new();
    if !args.files.is_empty() {
        if !args.resources.is_empty() {
            return Err(CliError::Usage(
                "when -f is given, no KIND or NAME arguments may be given".into(),
            ));
        }
        let mut stdin = std::io::stdin();
        for doc in manifest::read(&args.files, args.recursive, &mut stdin as &mut dyn Read)? {
            let api_version = doc.object["apiVersion"].as_str().unwrap_or_default();
            let kind = doc.object["kind"].as_str().unwrap_or_default();
            let Some(info) = Registry.by_kind(api_version, kind) else {
                *failures += 1;
                let _ = writeln!(
                    err,
                    "error: no matches for kind {kind:?} in version {api_version:?} (from {:?})",
                    doc.source
                );
                continue;
            };
            let own = doc.object["metadata"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty());
            let ns = target::namespace(info, own.or(args.namespace.as_deref()), false);
            victims.push(Victim {
                info,
                api: ctx.client.dynamic_for(info, ns.as_deref()),
                name: doc.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        return Ok(victims);
    }
    if args.resources.is_empty() {
        return Err(CliError::Usage(
            "you must specify the type of resource to delete, or -f FILE".into(),
        ));
    }
    for t in target::parse(&args.resources)? {
        if t.names.is_empty() {
            if args.selector.is_none() && !args.all {
                return Err(CliError::Usage(format!(
                    "resource(s) were provided, but no name was specified (name the {}, or use -l or --all)",
                    t.info.plural
                )));
            }
            let ns = target::namespace(t.info, args.namespace.as_deref(), args.all_namespaces);
            let api = ctx.client.dynamic_for(t.info, ns.as_deref());
            let lp = ListParams {
                label_selector: args.selector.clone(),
                ..ListParams::default()
            };
            let list = api.list(&lp).await.map_err(|e| {
                let _ = writeln!(err, "{}", ctx.describe(&e));
                CliError::Failed(ctx.describe(&e))
            })?;
            for item in list.items {
                let name = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let item_ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
                let api = if t.info.namespaced {
                    ctx.client.dynamic_for(t.info, Some(item_ns))
                } else {
                    api.clone()
                };
                victims.push(Victim {
                    info: t.info,
                    api,
                    name,
                });
            }
        } else {
            if args.selector.is_some() || args.all {
                return Err(CliError::Usage(
                    "name cannot be provided when a selector or --all is specified".into(),
                ));
            }
            let ns = target::namespace(t.info, args.namespace.as_deref(), false);
            for name in t.names {
                victims.push(Victim {
                    info: t.info,
                    api: ctx.client.dynamic_for(t.info, ns.as_deref()),
                    name,
                });
            }
        }
    }
    if victims.is_empty() && !args.ignore_not_found {
        let _ = writeln!(err, "No resources found");
    }
    Ok(victims)
}

/// Polls until the object is gone (or replaced by a new one with another uid).
async fn wait_gone(
    v: &Victim,
    uid: Option<&str>,
    deadline: Option<tokio::time::Instant>,
) -> Result<(), String> {
    loop {
        match v.api.get_opt(&v.name).await {
            Ok(None) => return Ok(()),
            Ok(Some(obj)) if uid.is_some() && obj["metadata"]["uid"].as_str() != uid => {
                return Ok(());
            }
            Ok(Some(_)) => {}
            Err(e) if e.is_transport() => {}
            Err(e) => {
                return Err(format!(
                    "error: waiting for {} {:?}: {e}",
                    target::kind_name(v.info),
                    v.name
                ));
            }
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(format!(
                "error: timed out waiting for the deletion of {} {:?}",
                target::kind_name(v.info),
                v.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
