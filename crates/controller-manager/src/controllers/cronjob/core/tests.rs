//! Golden cases for the CronJob decisions with an injected clock.

use super::*;
use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobStatus, JobTemplateSpec};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn cronjob(schedule: &str, policy: &str) -> CronJob {
    CronJob {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            namespace: Some("default".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(at("2024-01-01T10:00:30Z"))),
            ..Default::default()
        },
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            time_zone: Some("UTC".into()),
            concurrency_policy: Some(policy.into()),
            job_template: JobTemplateSpec::default(),
            ..Default::default()
        }),
        status: None,
    }
}

struct World {
    cj: CronJob,
    jobs: Vec<Job>,
    n: u32,
}

impl World {
    fn sync(&mut self, now: &str) -> Plan {
        let refs: Vec<&Job> = self.jobs.iter().collect();
        let plan = sync(&self.cj, &refs, at(now));
        for s in &plan.steps {
            match s {
                Step::CreateJob(j) => {
                    let mut j = (**j).clone();
                    self.n += 1;
                    j.metadata.uid = Some(format!("job-{}", self.n));
                    j.metadata.creation_timestamp = Some(Time(at(now)));
                    j.status = Some(JobStatus {
                        start_time: Some(Time(at(now))),
                        ..Default::default()
                    });
                    // The real create answers with the uid; the status write carries it.
                    if let Some(st) = self.cj.status.as_mut() {
                        let _ = st;
                    }
                    self.jobs.push(j);
                }
                Step::DeleteJob(n) => self.jobs.retain(|j| j.metadata.name.as_deref() != Some(n)),
                Step::UpdateStatus(st) => {
                    let mut st = st.clone();
                    // Fill in the uids the apiserver assigned (the plan's refs were made before the create).
                    for r in st.active.iter_mut().flatten() {
                        if r.uid.is_none() {
                            r.uid = self
                                .jobs
                                .iter()
                                .find(|j| j.metadata.name == r.name)
                                .and_then(|j| j.metadata.uid.clone());
                        }
                    }
                    self.cj.status = Some(st);
                }
                Step::Event { .. } => {}
            }
        }
        plan
    }

    fn finish_all(&mut self, kind: &str, when: &str) {
        for j in &mut self.jobs {
            if is_finished(j).is_none() {
                let st = j.status.get_or_insert_with(Default::default);
                st.conditions = Some(vec![JobCondition {
                    type_: kind.into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at(when))),
                    ..Default::default()
                }]);
                if kind == "Complete" {
                    st.completion_time = Some(Time(at(when)));
                }
            }
        }
    }

    fn names(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter_map(|j| j.metadata.name.clone())
            .collect()
    }
}

#[test]
fn creates_a_job_each_minute_and_trims_history() {
    let mut w = World {
        cj: cronjob("*/1 * * * *", "Allow"),
        jobs: vec![],
        n: 0,
    };
    let plan = w.sync("2024-01-01T10:00:40Z");
    assert!(w.jobs.is_empty(), "nothing scheduled yet");
    assert_eq!(plan.requeue_after, Some(Duration::from_millis(20_100)));
    for minute in 1..=5 {
        let now = format!("2024-01-01T10:0{minute}:01Z");
        let plan = w.sync(&now);
        assert_eq!(
            plan.requeue_after,
            Some(Duration::from_millis(59_100)),
            "{now}"
        );
        w.finish_all("Complete", &now);
        w.sync(&now);
    }
    // Minutes since the epoch of 10:01 … 10:05, the oldest two trimmed (successfulJobsHistoryLimit 3).
    assert_eq!(
        w.names(),
        vec!["hello-28401723", "hello-28401724", "hello-28401725"]
    );
    let st = w.cj.status.clone().unwrap_or_default();
    assert_eq!(
        st.last_schedule_time,
        Some(Time(at("2024-01-01T10:05:00Z")))
    );
    assert_eq!(
        st.last_successful_time,
        Some(Time(at("2024-01-01T10:05:01Z")))
    );
    assert_eq!(st.active, None);
    let ann = w.jobs[2].metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get(SCHEDULED_TIMESTAMP_ANNOTATION).map(String::as_str),
        Some("2024-01-01T10:05:00+00:00")
    );
}

#[test]
fn a_second_pass_in_the_same_minute_does_not_duplicate() {
    let mut w = World {
        cj: cronjob("*/1 * * * *", "Allow"),
        jobs: vec![],
        n: 0,
    };
    w.sync("2024-01-01T10:01:01Z");
    w.sync("2024-01-01T10:01:30Z");
    // Even when the status write was lost (restart between create and status update).
    w.cj.status = None;
    w.sync("2024-01-01T10:01:45Z");
    assert_eq!(w.jobs.len(), 1);
    assert_eq!(w.cj.status.and_then(|s| s.active).map(|a| a.len()), Some(1));
}

#[test]
fn forbid_skips_while_a_job_runs_and_replace_replaces_it() {
    let mut w = World {
        cj: cronjob("*/1 * * * *", "Forbid"),
        jobs: vec![],
        n: 0,
    };
    w.sync("2024-01-01T10:01:01Z");
    let plan = w.sync("2024-01-01T10:02:01Z");
    assert_eq!(w.jobs.len(), 1);
    assert!(plan.steps.iter().any(|s| matches!(
        s,
        Step::Event {
            reason: "JobAlreadyActive",
            ..
        }
    )));

    let mut w = World {
        cj: cronjob("*/1 * * * *", "Replace"),
        jobs: vec![],
        n: 0,
    };
    w.sync("2024-01-01T10:01:01Z");
    w.sync("2024-01-01T10:02:01Z");
    assert_eq!(w.names(), vec!["hello-28401722"]);

    let mut w = World {
        cj: cronjob("*/1 * * * *", "Allow"),
        jobs: vec![],
        n: 0,
    };
    w.sync("2024-01-01T10:01:01Z");
    w.sync("2024-01-01T10:02:01Z");
    assert_eq!(w.jobs.len(), 2);
}

#[test]
fn starting_deadline_and_suspend() {
    let mut cj = cronjob("0 * * * *", "Allow");
    if let Some(s) = cj.spec.as_mut() {
        s.starting_deadline_seconds = Some(60);
    }
    let mut w = World {
        cj,
        jobs: vec![],
        n: 0,
    };
    // 11:00 was scheduled, but it is 11:05: more than 60 s late, so it is skipped.
    let plan = w.sync("2024-01-01T11:05:00Z");
    assert!(w.jobs.is_empty());
    assert!(plan.steps.iter().all(|s| !matches!(s, Step::CreateJob(_))));
    w.sync("2024-01-01T12:00:30Z");
    assert_eq!(w.jobs.len(), 1);

    let mut cj = cronjob("*/1 * * * *", "Allow");
    if let Some(s) = cj.spec.as_mut() {
        s.suspend = Some(true);
    }
    let mut w = World {
        cj,
        jobs: vec![],
        n: 0,
    };
    let plan = w.sync("2024-01-01T10:05:00Z");
    assert!(w.jobs.is_empty());
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn failed_history_limit_and_bad_schedule() {
    let mut w = World {
        cj: cronjob("*/1 * * * *", "Allow"),
        jobs: vec![],
        n: 0,
    };
    for minute in 1..=3 {
        let now = format!("2024-01-01T10:0{minute}:01Z");
        w.sync(&now);
        w.finish_all("Failed", &now);
    }
    w.sync("2024-01-01T10:03:30Z");
    assert_eq!(w.names(), vec!["hello-28401723"]);

    let mut w = World {
        cj: cronjob("not a schedule", "Allow"),
        jobs: vec![],
        n: 0,
    };
    let plan = w.sync("2024-01-01T10:03:30Z");
    assert!(plan.steps.iter().any(|s| matches!(
        s,
        Step::Event {
            reason: "UnparseableSchedule",
            ..
        }
    )));
}
