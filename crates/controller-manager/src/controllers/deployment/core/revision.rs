//! The Deployment's ReplicaSets and revision: finding or creating the new ReplicaSet
//! (`getAllReplicaSetsAndSyncRevision`, `getNewReplicaSet`) and the Deployment's revision annotation.

use super::*;

impl Syncer {
    /// Kubernetes' `getAllReplicaSetsAndSyncRevision` (+ `getNewReplicaSet`).
    pub(super) fn sync_revision(&mut self, create: bool) {
        let template = template(&self.d);
        if self.new.is_none() {
            let mut idx: Vec<usize> = (0..self.rss.len()).collect();
            idx.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
            self.new = idx.into_iter().find(|i| {
                self.rss[*i]
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template))
            });
        }
        let max_old_revision = self
            .old_indices()
            .iter()
            .map(|i| revision(&self.rss[*i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        if let Some(n) = self.new {
            let mut rs = self.rss[n].clone();
            let mut changed =
                set_new_rs_annotations(&self.d, &mut rs, new_revision, true, self.surge);
            let min_ready = min_ready_seconds(&self.d);
            if let Some(spec) = rs.spec.as_mut()
                && spec.min_ready_seconds.unwrap_or(0) != min_ready
            {
                spec.min_ready_seconds = Some(min_ready);
                changed = true;
            }
            if changed {
                self.steps.push(Step::UpdateReplicaSet(rs.clone()));
                self.rss[n] = rs;
            }
            let rev = revision(&self.rss[n]).to_string();
            self.set_deployment_revision(rev);
            if progress_deadline(&self.d).is_some()
                && condition(self.status(), "Progressing").is_none()
            {
                let msg = format!("Found new replica set {:?}", rs_name(&self.rss[n]));
                let cond = new_condition("Progressing", "True", FOUND_NEW_RS_REASON, msg, self.now);
                set_condition(self.status(), cond);
            }
            return;
        }
        if !create {
            return;
        }
        self.create_new_rs(template, new_revision);
    }

    pub(super) fn set_deployment_revision(&mut self, rev: String) {
        let ann = self
            .d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        if ann.get(REVISION_ANNOTATION) != Some(&rev) {
            ann.insert(REVISION_ANNOTATION.into(), rev.clone());
            self.steps.push(Step::SetRevision(rev));
        }
    }

    pub(super) fn create_new_rs(
        &mut self,
        mut template: k8s_openapi::api::core::v1::PodTemplateSpec,
        new_revision: i64,
    ) {
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector: LabelSelector = self
            .d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{}", self.d.metadata.name.as_deref().unwrap_or(""), hash);
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                labels,
                owner_references: Some(vec![owner::controller_reference(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                creation_timestamp: Some(Time(self.now)),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(min_ready_seconds(&self.d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.rss.push(rs);
        let n = self.rss.len() - 1;
        self.new = Some(n);
        let count = self.new_rs_new_replicas();
        let mut rs = self.rss[n].clone();
        set_rs_replicas(&mut rs, count);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false, self.surge);
        self.rss[n] = rs.clone();
        // The create is what the shell sends; it must not carry our local creation time.
        let mut to_create = rs;
        to_create.metadata.creation_timestamp = None;
        self.steps.push(Step::CreateReplicaSet(to_create));
        if count > 0 {
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {count}"),
            );
        }
        self.set_deployment_revision(new_revision.to_string());
        if progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set {name:?}");
            let cond = new_condition("Progressing", "True", NEW_RS_REASON, msg, self.now);
            set_condition(self.status(), cond);
        }
    }

    /// Kubernetes' `NewRSNewReplicas`.
    pub(super) fn new_rs_new_replicas(&self) -> i32 {
        let Some(n) = self.new else { return 0 };
        let new_replicas = rs_replicas(&self.rss[n]);
        if is_recreate(&self.d) {
            return self.replicas();
        }
        let current = self.spec_sum(&self.all_indices());
        let max_total = self.replicas() + self.surge;
        if current >= max_total {
            return new_replicas;
        }
        let up = (max_total - current).min(self.replicas() - new_replicas);
        new_replicas + up
    }
}
