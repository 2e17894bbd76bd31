//! How lists merge, per field of the built-in kinds: the `patchStrategy`/`patchMergeKey` tags of
//! the Kubernetes API types (the `x-kubernetes-patch-strategy`/`-merge-key` of the OpenAPI
//! reference), which `k8s-openapi` does not carry. Strategic merge patch and server-side apply
//! both walk objects with this table.
//!
//! A field not listed is a plain field: objects merge key by key, lists are replaced whole
//! (atomic), as for any field without a patch strategy.

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced whole (no patch strategy).
    Atomic,
    /// A list of objects merged element by element, matched on the merge key.
    Map(&'static str),
    /// A list of scalars merged as a set (`patchStrategy: merge` on `[]string`).
    Set,
}

/// One field of a type: its type (for objects and list elements) and list behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Option<Type>,
    pub list: ListKind,
    /// `patchStrategy: retainKeys`: a patch that sets the object clears the keys it omits
    /// (`$retainKeys`).
    pub retain_keys: bool,
}

/// The types that contain fields with a strategy (or lead to one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    Container,
    PodTemplateSpec,
    Deployment,
    DeploymentSpec,
    WorkloadStatus,
    ReplicaSet,
    ReplicaSetSpec,
    StatefulSet,
    StatefulSetSpec,
    DaemonSet,
    DaemonSetSpec,
    Job,
    JobSpec,
    CronJob,
    CronJobSpec,
    JobTemplateSpec,
    Service,
    ServiceSpec,
    Node,
    NodeSpec,
    NodeStatus,
    ServiceAccount,
    WithConditions,
    /// Kinds with nothing but metadata to merge specially.
    Plain,
}

const fn plain(name: &'static str, ty: Type) -> Field {
    Field {
        name,
        ty: Some(ty),
        list: ListKind::Atomic,
        retain_keys: false,
    }
}

const fn keyed(name: &'static str, key: &'static str, ty: Option<Type>) -> Field {
    Field {
        name,
        ty,
        list: ListKind::Map(key),
        retain_keys: false,
    }
}

const fn set(name: &'static str) -> Field {
    Field {
        name,
        ty: None,
        list: ListKind::Set,
        retain_keys: false,
    }
}

const fn retained(mut f: Field) -> Field {
    f.retain_keys = true;
    f
}

const META: Field = plain("metadata", Type::ObjectMeta);

const OBJECT_META: &[Field] = &[set("finalizers"), keyed("ownerReferences", "uid", None)];
const POD: &[Field] = &[
    META,
    plain("spec", Type::PodSpec),
    plain("status", Type::PodStatus),
];
const POD_SPEC: &[Field] = &[
    keyed("containers", "name", Some(Type::Container)),
    keyed("initContainers", "name", Some(Type::Container)),
    keyed("ephemeralContainers", "name", Some(Type::Container)),
    retained(keyed("volumes", "name", None)),
    keyed("imagePullSecrets", "name", None),
    keyed("hostAliases", "ip", None),
    keyed("topologySpreadConstraints", "topologyKey", None),
    keyed("schedulingGates", "name", None),
    retained(keyed("resourceClaims", "name", None)),
];
const POD_STATUS: &[Field] = &[
    keyed("conditions", "type", None),
    keyed("podIPs", "ip", None),
    keyed("hostIPs", "ip", None),
    retained(keyed("resourceClaimStatuses", "name", None)),
];
const CONTAINER: &[Field] = &[
    keyed("ports", "containerPort", None),
    keyed("env", "name", None),
    keyed("volumeMounts", "mountPath", None),
    keyed("volumeDevices", "devicePath", None),
];
const POD_TEMPLATE_SPEC: &[Field] = &[META, plain("spec", Type::PodSpec)];
const DEPLOYMENT: &[Field] = &[
    META,
    plain("spec", Type::DeploymentSpec),
    plain("status", Type::WorkloadStatus),
];
const DEPLOYMENT_SPEC: &[Field] = &[
    plain("template", Type::PodTemplateSpec),
    retained(plain("strategy", Type::Plain)),
];
const WORKLOAD_STATUS: &[Field] = &[keyed("conditions", "type", None)];
const REPLICA_SET: &[Field] = &[
    META,
    plain("spec", Type::ReplicaSetSpec),
    plain("status", Type::WorkloadStatus),
];
const TEMPLATE_SPEC: &[Field] = &[plain("template", Type::PodTemplateSpec)];
const STATEFUL_SET: &[Field] = &[
    META,
    plain("spec", Type::StatefulSetSpec),
    plain("status", Type::WorkloadStatus),
];
const DAEMON_SET: &[Field] = &[
    META,
    plain("spec", Type::DaemonSetSpec),
    plain("status", Type::WorkloadStatus),
];
const JOB: &[Field] = &[
    META,
    plain("spec", Type::JobSpec),
    plain("status", Type::WorkloadStatus),
];
const CRON_JOB: &[Field] = &[META, plain("spec", Type::CronJobSpec)];
const CRON_JOB_SPEC: &[Field] = &[plain("jobTemplate", Type::JobTemplateSpec)];
const JOB_TEMPLATE_SPEC: &[Field] = &[META, plain("spec", Type::JobSpec)];
const SERVICE: &[Field] = &[
    META,
    plain("spec", Type::ServiceSpec),
    plain("status", Type::WithConditions),
];
const SERVICE_SPEC: &[Field] = &[keyed("ports", "port", None)];
const NODE: &[Field] = &[
    META,
    plain("spec", Type::NodeSpec),
    plain("status", Type::NodeStatus),
];
const NODE_SPEC: &[Field] = &[set("podCIDRs")];
const NODE_STATUS: &[Field] = &[
    keyed("conditions", "type", None),
    keyed("addresses", "type", None),
];
const SERVICE_ACCOUNT: &[Field] = &[META, keyed("secrets", "name", None)];
const WITH_CONDITIONS: &[Field] = &[keyed("conditions", "type", None)];
const PLAIN: &[Field] = &[META, plain("status", Type::WithConditions)];

impl Type {
    pub fn fields(self) -> &'static [Field] {
        match self {
            Type::ObjectMeta => OBJECT_META,
            Type::Pod => POD,
            Type::PodSpec => POD_SPEC,
            Type::PodStatus => POD_STATUS,
            Type::Container => CONTAINER,
            Type::PodTemplateSpec => POD_TEMPLATE_SPEC,
            Type::Deployment => DEPLOYMENT,
            Type::DeploymentSpec => DEPLOYMENT_SPEC,
            Type::WorkloadStatus => WORKLOAD_STATUS,
            Type::ReplicaSet => REPLICA_SET,
            Type::ReplicaSetSpec | Type::DaemonSetSpec | Type::StatefulSetSpec | Type::JobSpec => {
                TEMPLATE_SPEC
            }
            Type::StatefulSet => STATEFUL_SET,
            Type::DaemonSet => DAEMON_SET,
            Type::Job => JOB,
            Type::CronJob => CRON_JOB,
            Type::CronJobSpec => CRON_JOB_SPEC,
            Type::JobTemplateSpec => JOB_TEMPLATE_SPEC,
            Type::Service => SERVICE,
            Type::ServiceSpec => SERVICE_SPEC,
            Type::Node => NODE,
            Type::NodeSpec => NODE_SPEC,
            Type::NodeStatus => NODE_STATUS,
            Type::ServiceAccount => SERVICE_ACCOUNT,
            Type::WithConditions => WITH_CONDITIONS,
            Type::Plain => PLAIN,
        }
    }

    /// The field `name` of this type, if it has a strategy or leads to one.
    pub fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }
}

/// The root type of a kind.
pub fn root(group: &str, kind: &str) -> Type {
    match (group, kind) {
        ("", "Pod") => Type::Pod,
        ("", "Service") => Type::Service,
        ("", "Node") => Type::Node,
        ("", "ServiceAccount") => Type::ServiceAccount,
        ("apps", "Deployment") => Type::Deployment,
        ("apps", "ReplicaSet") => Type::ReplicaSet,
        ("apps", "StatefulSet") => Type::StatefulSet,
        ("apps", "DaemonSet") => Type::DaemonSet,
        ("batch", "Job") => Type::Job,
        ("batch", "CronJob") => Type::CronJob,
        _ => Type::Plain,
    }
}

/// What a field of `parent` is: its list kind and child type (plain when unknown).
pub fn lookup(parent: Option<Type>, name: &str) -> (ListKind, Option<Type>, bool) {
    match parent.and_then(|t| t.field(name)) {
        Some(f) => (f.list, f.ty, f.retain_keys),
        None => (ListKind::Atomic, None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_merge_by_name_at_every_depth() {
        let deploy = root("apps", "Deployment");
        let (_, spec, _) = lookup(Some(deploy), "spec");
        let (_, template, _) = lookup(spec, "template");
        let (_, pod_spec, _) = lookup(template, "spec");
        let (list, container, _) = lookup(pod_spec, "containers");
        assert_eq!(list, ListKind::Map("name"));
        assert_eq!(lookup(container, "ports").0, ListKind::Map("containerPort"));
        assert_eq!(lookup(pod_spec, "tolerations").0, ListKind::Atomic);
        let (_, meta, _) = lookup(Some(root("", "ConfigMap")), "metadata");
        assert_eq!(lookup(meta, "finalizers").0, ListKind::Set);
        assert!(lookup(spec, "strategy").2, "strategy retains keys");
    }
}
