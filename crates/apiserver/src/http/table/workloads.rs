//! Printers of pods and the workload kinds, as Kubernetes' `printPod`, `printDeployment`, … do.

use jiff::Timestamp;
use niwa_api::ResourceInfo;
use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, age, col, containers_and_images, human_duration, int, label_map,
    label_selector, name, parse_time, since, str_or,
};

pub fn columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    let s = "string";
    let i = "integer";
    // The `-o wide` columns every pod-template workload but StatefulSet ends with.
    let wide = |mut c: Vec<Column>| {
        c.extend([
            col("Containers", s, 1),
            col("Images", s, 1),
            col("Selector", s, 1),
        ]);
        c
    };
    Some(match (info.group, info.kind) {
        ("", "Pod") => vec![
            NAME,
            col("Ready", s, 0),
            col("Status", s, 0),
            col("Restarts", s, 0),
            AGE,
            col("IP", s, 1),
            col("Node", s, 1),
            col("Nominated Node", s, 1),
            col("Readiness Gates", s, 1),
        ],
        ("apps", "Deployment") => wide(vec![
            NAME,
            col("Ready", s, 0),
            col("Up-to-date", i, 0),
            col("Available", i, 0),
            AGE,
        ]),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => wide(vec![
            NAME,
            col("Desired", i, 0),
            col("Current", i, 0),
            col("Ready", i, 0),
            AGE,
        ]),
        ("apps", "StatefulSet") => vec![
            NAME,
            col("Ready", s, 0),
            AGE,
            col("Containers", s, 1),
            col("Images", s, 1),
        ],
        ("apps", "DaemonSet") => wide(vec![
            NAME,
            col("Desired", i, 0),
            col("Current", i, 0),
            col("Ready", i, 0),
            col("Up-to-date", i, 0),
            col("Available", i, 0),
            col("Node Selector", s, 0),
            AGE,
        ]),
        ("apps", "ControllerRevision") => {
            vec![NAME, col("Controller", s, 0), col("Revision", i, 0), AGE]
        }
        ("batch", "Job") => wide(vec![
            NAME,
            col("Status", s, 0),
            col("Completions", s, 0),
            col("Duration", s, 0),
            AGE,
        ]),
        ("batch", "CronJob") => wide(vec![
            NAME,
            col("Schedule", s, 0),
            col("Timezone", s, 0),
            col("Suspend", s, 0),
            col("Active", i, 0),
            col("Last Schedule", s, 0),
            AGE,
        ]),
        _ => return None,
    })
}

pub fn cells(info: &ResourceInfo, obj: &Value, now: Timestamp) -> Option<Vec<Value>> {
    // The `-o wide` cells matching `columns`' `wide`: the template's containers and images, and
    // the selector.
    let wide = |mut c: Vec<Value>, spec: &Value, selector: &Value| {
        let (containers, images) = containers_and_images(&spec["template"]["spec"]);
        c.extend([
            json!(containers),
            json!(images),
            json!(label_selector(selector)),
        ]);
        c
    };
    let spec = &obj["spec"];
    let status = &obj["status"];
    Some(match (info.group, info.kind) {
        ("", "Pod") => pod(obj, now),
        ("apps", "Deployment") => {
            let desired = spec["replicas"].as_i64().unwrap_or(1);
            wide(
                vec![
                    json!(name(obj)),
                    json!(format!("{}/{desired}", int(&status["readyReplicas"]))),
                    json!(int(&status["updatedReplicas"])),
                    json!(int(&status["availableReplicas"])),
                    age(obj, now),
                ],
                spec,
                &spec["selector"],
            )
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            let selector = if info.kind == "ReplicationController" {
                json!({"matchLabels": spec["selector"]})
            } else {
                spec["selector"].clone()
            };
            wide(
                vec![
                    json!(name(obj)),
                    json!(spec["replicas"].as_i64().unwrap_or(1)),
                    json!(int(&status["replicas"])),
                    json!(int(&status["readyReplicas"])),
                    age(obj, now),
                ],
                spec,
                &selector,
            )
        }
        ("apps", "StatefulSet") => {
            let (containers, images) = containers_and_images(&spec["template"]["spec"]);
            vec![
                json!(name(obj)),
                json!(format!(
                    "{}/{}",
                    int(&status["readyReplicas"]),
                    spec["replicas"].as_i64().unwrap_or(1)
                )),
                age(obj, now),
                json!(containers),
                json!(images),
            ]
        }
        ("apps", "DaemonSet") => wide(
            vec![
                json!(name(obj)),
                json!(int(&status["desiredNumberScheduled"])),
                json!(int(&status["currentNumberScheduled"])),
                json!(int(&status["numberReady"])),
                json!(int(&status["updatedNumberScheduled"])),
                json!(int(&status["numberAvailable"])),
                json!(label_map(&spec["template"]["spec"]["nodeSelector"])),
                age(obj, now),
            ],
            spec,
            &spec["selector"],
        ),
        ("apps", "ControllerRevision") => {
            let controller = obj["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
                .map(|r| {
                    let (group, _) = niwa_api::registry::split_api_version(
                        r["apiVersion"].as_str().unwrap_or_default(),
                    );
                    let kind = r["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
                    let kind = if group.is_empty() {
                        kind
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{kind}/{}", r["name"].as_str().unwrap_or_default())
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                json!(name(obj)),
                json!(controller),
                json!(int(&obj["revision"])),
                age(obj, now),
            ]
        }
        ("batch", "Job") => wide(
            vec![
                json!(name(obj)),
                json!(job_status(obj)),
                json!(job_completions(obj)),
                json!(job_duration(obj, now)),
                age(obj, now),
            ],
            spec,
            &spec["selector"],
        ),
        ("batch", "CronJob") => {
            let job_spec = &spec["jobTemplate"]["spec"];
            let (containers, images) = containers_and_images(&job_spec["template"]["spec"]);
            let last = if status["lastScheduleTime"].is_string() {
                since(&status["lastScheduleTime"], now)
            } else {
                "<none>".into()
            };
            vec![
                json!(name(obj)),
                json!(spec["schedule"].as_str().unwrap_or_default()),
                json!(str_or(&spec["timeZone"], "<none>")),
                json!(bool_ptr(&spec["suspend"])),
                json!(status["active"].as_array().map_or(0, Vec::len)),
                json!(last),
                age(obj, now),
                json!(containers),
                json!(images),
                json!(label_selector(&job_spec["selector"])),
            ]
        }
        _ => return None,
    })
}

fn bool_ptr(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if !job["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_completions(job: &Value) -> String {
    let succeeded = int(&job["status"]["succeeded"]);
    match job["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    }
}

fn job_duration(job: &Value, now: Timestamp) -> String {
    let Some(start) = parse_time(&job["status"]["startTime"]) else {
        return String::new();
    };
    match parse_time(&job["status"]["completionTime"]) {
        Some(end) => human_duration(end.as_second() - start.as_second()),
        None => human_duration(now.as_second() - start.as_second()),
    }
}

fn is_restartable_init(spec: &Value, container: &str) -> bool {
    spec["initContainers"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["name"] == container && c["restartPolicy"] == "Always")
    })
}

fn condition_true(pod: &Value, ty: &str) -> bool {
    has_condition(pod, ty)
}

/// `printPod`: READY, STATUS (the reason kubectl shows: `CrashLoopBackOff`, `Init:0/1`,
/// `Completed`, `Terminating`, …), RESTARTS (`3 (5m ago)`), AGE, IP, NODE, NOMINATED NODE,
/// READINESS GATES.
fn pod(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let empty = Vec::new();
    let init_specs = spec["initContainers"].as_array().unwrap_or(&empty);
    let mut total = spec["containers"].as_array().map_or(0, Vec::len);
    total += init_specs
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .count();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut sidecar_last_restart: Option<Timestamp> = None;
    let phase = status["phase"].as_str().unwrap_or_default();
    let mut reason = str_or(&status["reason"], phase).to_string();
    if status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    }) {
        reason = "SchedulingGated".into();
    }
    let later = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };

    let mut initializing = false;
    let init_statuses = status["initContainerStatuses"].as_array().unwrap_or(&empty);
    for (i, c) in init_statuses.iter().enumerate() {
        let cname = c["name"].as_str().unwrap_or_default();
        let sidecar = is_restartable_init(spec, cname);
        restarts += int(&c["restartCount"]);
        let finished = parse_time(&c["lastState"]["terminated"]["finishedAt"]);
        last_restart = later(last_restart, finished);
        if sidecar {
            sidecar_restarts += int(&c["restartCount"]);
            sidecar_last_restart = later(sidecar_last_restart, finished);
        }
        let terminated = &c["state"]["terminated"];
        let waiting = &c["state"]["waiting"];
        if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
            continue;
        }
        if sidecar && c["started"] == true {
            if c["ready"] == true {
                ready += 1;
            }
            continue;
        }
        if terminated.is_object() {
            reason = match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None if int(&terminated["signal"]) != 0 => {
                    format!("Init:Signal:{}", int(&terminated["signal"]))
                }
                None => format!("Init:ExitCode:{}", int(&terminated["exitCode"])),
            };
        } else if let Some(r) = waiting["reason"]
            .as_str()
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        let statuses = status["containerStatuses"].as_array().unwrap_or(&empty);
        for c in statuses.iter().rev() {
            restarts += int(&c["restartCount"]);
            last_restart = later(
                last_restart,
                parse_time(&c["lastState"]["terminated"]["finishedAt"]),
            );
            let waiting = &c["state"]["waiting"];
            let terminated = &c["state"]["terminated"];
            if let Some(r) = waiting["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(r) = terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if terminated.is_object() {
                reason = if int(&terminated["signal"]) != 0 {
                    format!("Signal:{}", int(&terminated["signal"]))
                } else {
                    format!("ExitCode:{}", int(&terminated["exitCode"]))
                };
            } else if c["ready"] == true && c["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = !pod["metadata"]["deletionTimestamp"].is_null();
    if deleting && status["reason"] == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".into();
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    let pod_ip = status["podIPs"][0]["ip"]
        .as_str()
        .or_else(|| status["podIP"].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>");
    let gates = spec["readinessGates"].as_array().map(|gates| {
        let ok = gates
            .iter()
            .filter(|g| {
                let ty = g["conditionType"].as_str().unwrap_or_default();
                status["conditions"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
                    .is_some_and(|c| c["status"] == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    });
    vec![
        json!(name(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod, now),
        json!(pod_ip),
        json!(str_or(&spec["nodeName"], "<none>")),
        json!(str_or(&status["nominatedNodeName"], "<none>")),
        json!(gates.unwrap_or_else(|| "<none>".into())),
    ]
}

/// Row conditions Kubernetes attaches to finished pods.
pub fn pod_row_conditions(pod: &Value) -> Option<Value> {
    match pod["status"]["phase"].as_str()? {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."}]),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use niwa_api::Registry;

    fn now() -> Timestamp {
        "2025-01-01T01:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn pod_cells(p: Value) -> Vec<Value> {
        pod(&p, now())
    }

    #[test]
    fn pod_status_reasons() {
        let base = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T00:55:00Z"},
            "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}});
        let c = pod_cells(base.clone());
        assert_eq!(
            c,
            vec![
                json!("web"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("5m"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );

        let mut running = base.clone();
        running["spec"]["nodeName"] = json!("node-1");
        running["status"] = json!({"phase": "Running", "podIP": "127.244.1.5",
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 3,
                "state": {"running": {"startedAt": "2025-01-01T00:58:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T00:57:00Z"}}}]});
        let c = pod_cells(running);
        assert_eq!(c[1], "1/1");
        assert_eq!(c[2], "Running");
        assert_eq!(c[3], "3 (3m ago)");
        assert_eq!(c[5], "127.244.1.5");
        assert_eq!(c[6], "node-1");

        let mut crash = base.clone();
        crash["status"] = json!({"phase": "Running", "containerStatuses": [{"name": "c",
            "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
        assert_eq!(pod_cells(crash)[2], "CrashLoopBackOff");

        let mut done = base.clone();
        done["status"] = json!({"phase": "Succeeded", "containerStatuses": [{"name": "c",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
        assert_eq!(pod_cells(done)[2], "Completed");

        let mut exit = base.clone();
        exit["status"] = json!({"phase": "Failed", "containerStatuses": [{"name": "c",
            "state": {"terminated": {"exitCode": 2}}}]});
        assert_eq!(pod_cells(exit)[2], "ExitCode:2");

        let mut init = base.clone();
        init["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        init["status"] = json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}]});
        assert_eq!(pod_cells(init)[2], "Init:1/2");

        let mut deleting = base;
        deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T01:00:30Z");
        deleting["status"]["phase"] = json!("Running");
        assert_eq!(pod_cells(deleting)[2], "Terminating");
    }

    #[test]
    fn deployment_and_job_rows() {
        let Some(deploy) = Registry.resolve("deployments") else {
            panic!("deployments");
        };
        let d = json!({"metadata": {"name": "nginx", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells(deploy, &d, now()),
            Some(vec![
                json!("nginx"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("60m"),
                json!("nginx"),
                json!("nginx:1.27"),
                json!("app=nginx")
            ])
        );
        let job = json!({"spec": {"completions": 3}, "status": {"succeeded": 3,
            "startTime": "2025-01-01T00:00:00Z", "completionTime": "2025-01-01T00:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(job_status(&job), "Complete");
        assert_eq!(job_completions(&job), "3/3");
        assert_eq!(job_duration(&job, now()), "42s");
    }
}
