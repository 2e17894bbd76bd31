//! What a Job creates: its pods (from the template, with the Job's labels, tracking finalizer and
//! completion index) and the selector of those pods.

use super::*;

/// The pod a Job creates: the template plus the Job's labels, the tracking finalizer, our controller
/// reference; for Indexed Jobs the completion index (annotation, label, `JOB_COMPLETION_INDEX`, hostname).
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(CONTROLLER_UID_LABEL.into(), uid.clone());
    labels.insert(JOB_NAME_LABEL.into(), name.clone());
    labels.insert("controller-uid".into(), uid);
    labels.insert("job-name".into(), name.clone());
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    let mut spec = template.spec.unwrap_or_default();
    let mut generate_name = crate::controllers::replicaset::core::pod_name_prefix(&name);
    if let Some(i) = index {
        annotations.insert(COMPLETION_INDEX_ANNOTATION.into(), i.to_string());
        labels.insert(COMPLETION_INDEX_ANNOTATION.into(), i.to_string());
        generate_name = format!("{name}-{i}-");
        if spec.hostname.is_none() {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        let env = EnvVar {
            name: "JOB_COMPLETION_INDEX".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
                }),
                ..Default::default()
            }),
        };
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            let envs = c.env.get_or_insert_with(Vec::new);
            if !envs.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                envs.push(env.clone());
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![owner::controller_reference(
                "batch/v1",
                "Job",
                &job.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The selector of a Job's pods: its spec selector, or (when the apiserver did not generate one)
/// the controller-uid label it puts on every pod.
pub fn selector(
    job: &Job,
) -> Result<niwa_api::selector::LabelSelector, niwa_api::selector::SelectorError> {
    match job.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(sel) => niwa_api::selector::LabelSelector::from_api(Some(sel)),
        None => niwa_api::selector::LabelSelector::parse(&format!(
            "{CONTROLLER_UID_LABEL}={}",
            job.metadata.uid.as_deref().unwrap_or("")
        )),
    }
}
