//! Golden cases for the Job decisions, with a small world that plays the apiserver and kubelet.

use super::*;
use k8s_openapi::api::batch::v1::{
    JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus, PodTemplateSpec,
};

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn job(completions: Option<i32>, parallelism: i32) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("default".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            completions,
            parallelism: Some(parallelism),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

struct World {
    job: Job,
    pods: Vec<Pod>,
    clock: i64,
    n: u32,
}

impl World {
    fn new(job: Job) -> World {
        World {
            job,
            pods: Vec::new(),
            clock: 0,
            n: 0,
        }
    }

    fn sync(&mut self) -> Plan {
        let refs: Vec<&Pod> = self.pods.iter().collect();
        let plan = sync(&self.job, &refs, ts(self.clock));
        for s in &plan.steps {
            match s {
                Step::UpdateStatus(st) => self.job.status = Some(st.clone()),
                Step::RemoveFinalizers(names) => {
                    for p in self.pods.iter_mut().filter(|p| {
                        names.contains(p.metadata.name.as_ref().unwrap_or(&String::new()))
                    }) {
                        if let Some(f) = p.metadata.finalizers.as_mut() {
                            f.retain(|f| f != TRACKING_FINALIZER);
                        }
                    }
                }
                Step::CreatePods(pods) => {
                    for p in pods {
                        let mut p = p.clone();
                        self.n += 1;
                        let name = format!(
                            "{}{}",
                            p.metadata.generate_name.clone().unwrap_or_default(),
                            self.n
                        );
                        p.metadata.name = Some(name);
                        p.metadata.uid = Some(format!("pod-{}", self.n));
                        p.status = Some(PodStatus {
                            phase: Some("Pending".into()),
                            ..Default::default()
                        });
                        self.pods.push(p);
                    }
                }
                Step::DeletePods(names) => self.pods.retain(|p| {
                    !names.contains(p.metadata.name.as_ref().unwrap_or(&String::new()))
                }),
                Step::Event { .. } => {}
            }
        }
        plan
    }

    fn finish_pending(&mut self, phase: &str, exit: i32) {
        let at = ts(self.clock);
        for p in self.pods.iter_mut().filter(|p| podutil::is_active(p)) {
            p.status = Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: exit,
                            finished_at: Some(Time(at)),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
    }

    fn active(&self) -> usize {
        self.pods.iter().filter(|p| podutil::is_active(p)).count()
    }

    fn status(&self) -> JobStatus {
        self.job.status.clone().unwrap_or_default()
    }

    fn condition(&self, t: &str) -> Option<String> {
        self.status()
            .conditions?
            .into_iter()
            .find(|c| c.type_ == t && c.status == "True")
            .and_then(|c| c.reason)
    }
}

#[test]
fn runs_completions_with_parallelism_and_completes() {
    let mut w = World::new(job(Some(5), 2));
    let mut steps = Vec::new();
    for _ in 0..10 {
        w.clock += 1;
        w.sync();
        steps.push((w.active(), w.status().succeeded.unwrap_or(0)));
        w.finish_pending("Succeeded", 0);
    }
    assert_eq!(&steps[..4], &[(2, 0), (2, 2), (1, 4), (0, 5)]);
    assert_eq!(
        w.condition("Complete").as_deref(),
        Some("CompletionsReached")
    );
    assert_eq!(
        w.condition("SuccessCriteriaMet").as_deref(),
        Some("CompletionsReached")
    );
    assert!(w.status().completion_time.is_some());
    assert_eq!(w.pods.len(), 5, "no extra pods");
    assert!(
        w.pods.iter().all(|p| !has_finalizer(p)),
        "finalizers released"
    );
}

#[test]
fn pods_carry_the_tracking_finalizer_labels_and_owner() {
    let mut w = World::new(job(Some(1), 1));
    w.sync();
    let p = &w.pods[0];
    assert!(has_finalizer(p));
    let labels = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(JOB_NAME_LABEL).map(String::as_str), Some("pi"));
    assert_eq!(
        labels.get(CONTROLLER_UID_LABEL).map(String::as_str),
        Some("job-uid")
    );
    assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-"));
    assert!(owner::is_controlled_by(&p.metadata, "job-uid"));
}

#[test]
fn failing_pods_retry_with_exponential_backoff_until_the_limit() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.backoff_limit = Some(2);
    }
    let mut w = World::new(j);
    let mut created_at = Vec::new();
    for t in 0..200 {
        w.clock = t;
        let before = w.pods.len();
        let plan = w.sync();
        if w.pods.len() > before {
            created_at.push(t);
        }
        if t == 0 {
            assert!(plan.requeue_after.is_none());
        }
        w.finish_pending("Failed", 1);
        if w.condition("Failed").is_some() {
            break;
        }
    }
    // Pod 1 at 0 (fails at 0), pod 2 after 10 s, pod 3 after another 20 s; the third failure
    // exceeds backoffLimit 2.
    assert_eq!(created_at, vec![0, 10, 30]);
    assert_eq!(
        w.condition("Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(w.status().failed, Some(3));
    assert_eq!(backoff_delay(1), Duration::from_secs(10));
    assert_eq!(backoff_delay(3), Duration::from_secs(40));
    assert_eq!(backoff_delay(10), BACKOFF_MAX);
}

#[test]
fn active_deadline_fails_the_job_and_kills_its_pods() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.active_deadline_seconds = Some(30);
    }
    let mut w = World::new(j);
    let plan = w.sync();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
    w.clock = 31;
    w.sync();
    assert_eq!(
        w.condition("FailureTarget").as_deref(),
        Some("DeadlineExceeded")
    );
    assert_eq!(w.active(), 0);
    w.sync();
    assert_eq!(w.condition("Failed").as_deref(), Some("DeadlineExceeded"));
    let msg = w
        .status()
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .and_then(|c| c.message);
    assert_eq!(
        msg.as_deref(),
        Some("Job was active longer than specified deadline")
    );
}

#[test]
fn indexed_job_runs_each_index_once() {
    let mut j = job(Some(4), 2);
    if let Some(s) = j.spec.as_mut() {
        s.completion_mode = Some("Indexed".into());
    }
    let mut w = World::new(j);
    w.sync();
    let idx: Vec<i32> = w.pods.iter().filter_map(completion_index).collect();
    assert_eq!(idx, vec![0, 1]);
    assert_eq!(w.pods[0].metadata.generate_name.as_deref(), Some("pi-0-"));
    assert_eq!(
        w.pods[1]
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .as_deref(),
        Some("pi-1")
    );
    for _ in 0..6 {
        w.finish_pending("Succeeded", 0);
        w.clock += 1;
        w.sync();
    }
    assert_eq!(w.status().completed_indexes.as_deref(), Some("0-3"));
    assert_eq!(w.status().succeeded, Some(4));
    assert_eq!(
        w.condition("Complete").as_deref(),
        Some("CompletionsReached")
    );
    assert_eq!(w.pods.len(), 4);
}

#[test]
fn work_queue_job_completes_after_first_success_and_others_finish() {
    let mut w = World::new(job(None, 3));
    w.sync();
    assert_eq!(w.active(), 3);
    // One finishes successfully: no new pods, the job waits for the others.
    let first = w.pods[0].clone();
    w.finish_pending("Running", 0);
    if let Some(p) = w
        .pods
        .iter_mut()
        .find(|p| p.metadata.uid == first.metadata.uid)
    {
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
    }
    w.sync();
    assert_eq!(w.pods.len(), 3);
    w.finish_pending("Succeeded", 0);
    w.sync();
    w.sync();
    assert_eq!(
        w.condition("Complete").as_deref(),
        Some("CompletionsReached")
    );
}

#[test]
fn pod_failure_policy_fail_job_and_ignore() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: "In".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                },
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: "In".into(),
                        values: vec![7],
                    }),
                    on_pod_conditions: None,
                },
            ],
        });
    }
    let mut w = World::new(j);
    w.sync();
    w.finish_pending("Failed", 7);
    w.clock += 100;
    w.sync();
    assert_eq!(w.status().failed, Some(0), "ignored failures do not count");
    assert_eq!(w.active(), 1, "replaced");
    w.finish_pending("Failed", 42);
    w.sync();
    w.sync();
    assert_eq!(w.condition("Failed").as_deref(), Some("PodFailurePolicy"));
}

#[test]
fn suspend_deletes_active_pods_and_resume_restarts() {
    let mut w = World::new(job(Some(2), 2));
    w.sync();
    assert_eq!(w.active(), 2);
    if let Some(s) = w.job.spec.as_mut() {
        s.suspend = Some(true);
    }
    w.sync();
    assert_eq!(w.active(), 0);
    assert_eq!(w.condition("Suspended").as_deref(), Some("JobSuspended"));
    if let Some(s) = w.job.spec.as_mut() {
        s.suspend = Some(false);
    }
    w.sync();
    assert_eq!(w.active(), 2);
    let c = w
        .status()
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Suspended");
    assert_eq!(
        c.map(|c| (c.status, c.reason)),
        Some(("False".into(), Some("JobResumed".into())))
    );
}

#[test]
fn indexes_round_trip() {
    let set = parse_indexes("1,3-5,9", 8);
    assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![1, 3, 4, 5]);
    assert_eq!(format_indexes(&set), "1,3-5");
    assert_eq!(format_indexes(&BTreeSet::new()), "");
}

#[test]
fn ttl_after_finished() {
    let mut j = job(Some(1), 1);
    if let Some(s) = j.spec.as_mut() {
        s.ttl_seconds_after_finished = Some(60);
    }
    assert_eq!(ttl_remaining(&j, ts(0)), None);
    j.status = Some(JobStatus {
        completion_time: Some(Time(ts(10))),
        conditions: Some(vec![JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(10))),
            ..Default::default()
        }]),
        ..Default::default()
    });
    assert_eq!(ttl_remaining(&j, ts(40)), Some(Duration::from_secs(30)));
    assert_eq!(ttl_remaining(&j, ts(70)), Some(Duration::ZERO));
}
