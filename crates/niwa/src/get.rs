//! `niwa get KIND [NAME...] [-n NS | -A] [-l SEL] [--field-selector SEL] [-o yaml|json|name|wide] [-w]`

use std::io::Write;

use futures::StreamExt;
use niwa_api::ResourceInfo;
use niwa_client::{DynamicApi, ListParams, WatchEvent, WatchParams};
use serde_json::Value;

use crate::output::{self, Format, Table};
use crate::target::{self, Target};
use crate::{CliError, Context, columns};

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to show: `KIND [NAME...]`, `KIND1,KIND2`, or `KIND/NAME...` (kinds by plural,
    /// singular, short name or kind: pods, pod, po, Pod, deployments.apps).
    #[arg(required = true, value_name = "KIND [NAME]")]
    pub resources: Vec<String>,
    /// Namespace of namespaced kinds (default: `default`).
    #[arg(short = 'n', long, env = "NIWA_NAMESPACE")]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web,tier in (fe,be)`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`spec.nodeName=n1`, `status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format instead of a table.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
    /// After listing, keep printing changes until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Tables without their header line.
    #[arg(long)]
    pub no_headers: bool,
}

/// What one kind contributed.
struct Fetched {
    target: Target,
    api: DynamicApi,
    items: Vec<Value>,
    resource_version: String,
}

pub async fn run(
    ctx: &Context,
    args: GetArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let targets = target::parse(&args.resources)?;
    if args.watch && targets.len() > 1 {
        return Err(CliError::Usage(
            "you may only specify a single resource type with --watch".into(),
        ));
    }
    if args.watch && targets.iter().any(|t| t.names.len() > 1) {
        return Err(CliError::Usage(
            "you may only watch a single object by name".into(),
        ));
    }
    let mut failed = false;
    let mut fetched = Vec::new();
    for target in targets {
        let ns = target::namespace(target.info, args.namespace.as_deref(), args.all_namespaces);
        let api = ctx.client.dynamic_for(target.info, ns.as_deref());
        let mut items = Vec::new();
        let mut resource_version = String::new();
        if target.names.is_empty() {
            let lp = ListParams {
                label_selector: args.selector.clone(),
                field_selector: args.field_selector.clone(),
                ..ListParams::default()
            };
            match api.list(&lp).await {
                Ok(list) => {
                    items = list.items;
                    resource_version = list.resource_version;
                }
                Err(e) => {
                    let _ = writeln!(err, "{}", ctx.describe(&e));
                    return Err(CliError::Failed(ctx.describe(&e)));
                }
            }
        } else {
            for name in &target.names {
                match api.get(name).await {
                    Ok(obj) => {
                        resource_version = obj["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        items.push(obj);
                    }
                    Err(e) => {
                        failed = true;
                        let _ = writeln!(err, "{}", ctx.describe(&e));
                    }
                }
            }
        }
        fetched.push(Fetched {
            target,
            api,
            items,
            resource_version,
        });
    }

    let mut table = Table::default();
    print(&args, &fetched, &mut table, out, err);
    let _ = out.flush();
    if failed {
        return Err(CliError::Failed("some objects were not found".into()));
    }
    if args.watch
        && let Some(f) = fetched.into_iter().next()
    {
        return watch(ctx, &args, f, &mut table, out, err).await;
    }
    Ok(())
}

fn single_object(fetched: &[Fetched]) -> bool {
    fetched.len() == 1 && fetched[0].target.names.len() == 1
}

fn print(
    args: &GetArgs,
    fetched: &[Fetched],
    table: &mut Table,
    out: &mut dyn Write,
    err: &mut dyn Write,
) {
    let all: Vec<Value> = fetched
        .iter()
        .flat_map(|f| f.items.iter().cloned())
        .collect();
    match args.output {
        Some(Format::Yaml | Format::Json) => {
            if all.is_empty() && single_object(fetched) {
                return;
            }
            let value = if single_object(fetched) {
                all.into_iter().next().unwrap_or(Value::Null)
            } else {
                output::list_value(all)
            };
            let text = if args.output == Some(Format::Yaml) {
                output::to_yaml(&value)
            } else {
                output::to_json(&value)
            };
            let _ = out.write_all(text.as_bytes());
        }
        Some(Format::Name) => {
            for f in fetched {
                for item in &f.items {
                    let _ = writeln!(out, "{}", object_name(f.target.info, item));
                }
            }
        }
        None | Some(Format::Wide) => {
            let wide = args.output == Some(Format::Wide);
            let mut first = true;
            for f in fetched.iter().filter(|f| !f.items.is_empty()) {
                if !first {
                    let _ = writeln!(out);
                }
                first = false;
                let prefixed = fetched.len() > 1;
                let text = render_table(
                    args,
                    f.target.info,
                    &f.items,
                    wide,
                    prefixed,
                    table,
                    !args.no_headers,
                );
                let _ = out.write_all(text.as_bytes());
            }
            let asked_names = fetched.iter().any(|f| !f.target.names.is_empty());
            if all.is_empty() && !asked_names {
                let _ = writeln!(err, "{}", no_resources(args, fetched));
            }
        }
    }
}

fn no_resources(args: &GetArgs, fetched: &[Fetched]) -> String {
    let namespaced = fetched.iter().any(|f| f.target.info.namespaced);
    if args.all_namespaces || !namespaced {
        "No resources found".into()
    } else {
        format!(
            "No resources found in {} namespace.",
            args.namespace.as_deref().unwrap_or("default")
        )
    }
}

/// `pod/web`, `deployment.apps/web`.
fn object_name(info: &ResourceInfo, obj: &Value) -> String {
    format!(
        "{}/{}",
        target::kind_name(info),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn render_table(
    args: &GetArgs,
    info: &ResourceInfo,
    items: &[Value],
    wide: bool,
    prefix_kind: bool,
    table: &mut Table,
    header: bool,
) -> String {
    let now = jiff::Timestamp::now();
    let with_ns = args.all_namespaces && info.namespaced;
    let mut head: Vec<String> = columns::headers(info, wide)
        .iter()
        .map(|h| h.to_string())
        .collect();
    if with_ns {
        head.insert(0, "NAMESPACE".into());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|obj| {
            let mut row = columns::row(info, obj, wide, now);
            if prefix_kind && info.kind != "Event" {
                row[0] = format!("{}/{}", target::kind_name(info), row[0]);
            }
            if with_ns {
                row.insert(
                    0,
                    obj["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            row
        })
        .collect();
    table.render(header.then_some(head.as_slice()), &rows)
}

/// Follows changes after the initial print until Ctrl-C, resuming the watch when the server
/// ends it.
async fn watch(
    ctx: &Context,
    args: &GetArgs,
    fetched: Fetched,
    table: &mut Table,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let info = fetched.target.info;
    let wp = WatchParams {
        label_selector: args.selector.clone(),
        field_selector: match (fetched.target.names.first(), &args.field_selector) {
            (Some(name), Some(fs)) => Some(format!("metadata.name={name},{fs}")),
            (Some(name), None) => Some(format!("metadata.name={name}")),
            (None, fs) => fs.clone(),
        },
        ..WatchParams::default()
    };
    let mut rv = fetched.resource_version.clone();
    let mut printed_header = !fetched.items.is_empty() || args.no_headers;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let mut stream = match fetched.api.watch(&wp, &rv).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = writeln!(err, "{}", ctx.describe(&e));
                return Err(CliError::Failed(ctx.describe(&e)));
            }
        };
        loop {
            let next = tokio::select! {
                _ = &mut interrupted => return Ok(()),
                next = stream.next() => next,
            };
            let obj = match next {
                None => break,
                Some(Err(e)) => {
                    let _ = writeln!(err, "{}", ctx.describe(&e));
                    return Err(CliError::Failed(ctx.describe(&e)));
                }
                Some(Ok(WatchEvent::Bookmark(at))) => {
                    rv = at;
                    continue;
                }
                Some(Ok(WatchEvent::Error(status))) => {
                    let e = niwa_client::Error::Api(status);
                    let _ = writeln!(err, "{}", ctx.describe(&e));
                    return Err(CliError::Failed(ctx.describe(&e)));
                }
                Some(Ok(
                    WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o),
                )) => o,
            };
            if let Some(at) = obj["metadata"]["resourceVersion"].as_str() {
                rv = at.to_string();
            }
            let text = match args.output {
                Some(Format::Yaml) => format!("---\n{}", output::to_yaml(&obj)),
                Some(Format::Json) => output::to_json(&obj),
                Some(Format::Name) => format!("{}\n", object_name(info, &obj)),
                None | Some(Format::Wide) => {
                    let wide = args.output == Some(Format::Wide);
                    let header = !printed_header;
                    printed_header = true;
                    render_table(
                        args,
                        info,
                        std::slice::from_ref(&obj),
                        wide,
                        false,
                        table,
                        header,
                    )
                }
            };
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}
