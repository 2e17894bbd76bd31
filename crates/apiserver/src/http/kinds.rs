//! The one list of (group, version, kind) → Rust type that the OpenAPI schemas
//! ([`super::openapi`]) and the protobuf decoder ([`super::protobuf`]) are generated from, so the
//! two cannot drift apart.
//!
//! `for_each_kind!` is a callback macro: `for_each_kind!(m)` expands to `m!` of
//! the whole list, one entry per kind:
//!
//! ```text
//! <protobuf | openapi_only> "<group>" "<version>" "<Kind>" => <path under the crate root>,
//! ```
//!
//! The path is relative to the root of both `k8s-openapi` and `k8s-pb`, which lay out their
//! modules alike (`api::core::v1::Pod`, `apimachinery::pkg::apis::meta::v1::Status`); each
//! caller puts its own crate in front. Every entry gets an OpenAPI schema. `protobuf` entries are
//! also decodable from the Kubernetes protobuf envelope: the kinds niwa serves (the registry) and
//! the subresource bodies kubectl writes (Binding, Eviction, Scale). `openapi_only` entries have a
//! schema only — kinds niwa has no resource for (RBAC, NetworkPolicy, RuntimeClass, …),
//! autoscaling/v1 HorizontalPodAutoscaler beside the served v2, and `meta.k8s.io` Status and
//! DeleteOptions — so a protobuf body of one is refused as unsupported media, as for any kind not
//! listed here.

macro_rules! for_each_kind {
    ($callback:ident) => {
        $callback! {
            protobuf "" "v1" "Namespace" => api::core::v1::Namespace,
            protobuf "" "v1" "Node" => api::core::v1::Node,
            protobuf "" "v1" "Pod" => api::core::v1::Pod,
            protobuf "" "v1" "Service" => api::core::v1::Service,
            protobuf "" "v1" "Endpoints" => api::core::v1::Endpoints,
            protobuf "" "v1" "ConfigMap" => api::core::v1::ConfigMap,
            protobuf "" "v1" "Secret" => api::core::v1::Secret,
            protobuf "" "v1" "ServiceAccount" => api::core::v1::ServiceAccount,
            protobuf "" "v1" "Event" => api::core::v1::Event,
            protobuf "" "v1" "PersistentVolume" => api::core::v1::PersistentVolume,
            protobuf "" "v1" "PersistentVolumeClaim" => api::core::v1::PersistentVolumeClaim,
            protobuf "" "v1" "ResourceQuota" => api::core::v1::ResourceQuota,
            protobuf "" "v1" "LimitRange" => api::core::v1::LimitRange,
            openapi_only "" "v1" "ReplicationController" => api::core::v1::ReplicationController,
            openapi_only "" "v1" "PodTemplate" => api::core::v1::PodTemplate,
            protobuf "" "v1" "Binding" => api::core::v1::Binding,
            protobuf "apps" "v1" "Deployment" => api::apps::v1::Deployment,
            protobuf "apps" "v1" "ReplicaSet" => api::apps::v1::ReplicaSet,
            protobuf "apps" "v1" "DaemonSet" => api::apps::v1::DaemonSet,
            protobuf "apps" "v1" "StatefulSet" => api::apps::v1::StatefulSet,
            protobuf "apps" "v1" "ControllerRevision" => api::apps::v1::ControllerRevision,
            protobuf "batch" "v1" "Job" => api::batch::v1::Job,
            protobuf "batch" "v1" "CronJob" => api::batch::v1::CronJob,
            protobuf "discovery.k8s.io" "v1" "EndpointSlice" => api::discovery::v1::EndpointSlice,
            protobuf "networking.k8s.io" "v1" "Ingress" => api::networking::v1::Ingress,
            protobuf "networking.k8s.io" "v1" "IngressClass" => api::networking::v1::IngressClass,
            openapi_only "networking.k8s.io" "v1" "NetworkPolicy" => api::networking::v1::NetworkPolicy,
            protobuf "coordination.k8s.io" "v1" "Lease" => api::coordination::v1::Lease,
            protobuf "events.k8s.io" "v1" "Event" => api::events::v1::Event,
            protobuf "policy" "v1" "PodDisruptionBudget" => api::policy::v1::PodDisruptionBudget,
            protobuf "policy" "v1" "Eviction" => api::policy::v1::Eviction,
            protobuf "autoscaling" "v1" "Scale" => api::autoscaling::v1::Scale,
            openapi_only "autoscaling" "v1" "HorizontalPodAutoscaler" => api::autoscaling::v1::HorizontalPodAutoscaler,
            protobuf "autoscaling" "v2" "HorizontalPodAutoscaler" => api::autoscaling::v2::HorizontalPodAutoscaler,
            openapi_only "rbac.authorization.k8s.io" "v1" "Role" => api::rbac::v1::Role,
            openapi_only "rbac.authorization.k8s.io" "v1" "RoleBinding" => api::rbac::v1::RoleBinding,
            openapi_only "rbac.authorization.k8s.io" "v1" "ClusterRole" => api::rbac::v1::ClusterRole,
            openapi_only "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" => api::rbac::v1::ClusterRoleBinding,
            openapi_only "scheduling.k8s.io" "v1" "PriorityClass" => api::scheduling::v1::PriorityClass,
            protobuf "storage.k8s.io" "v1" "StorageClass" => api::storage::v1::StorageClass,
            openapi_only "node.k8s.io" "v1" "RuntimeClass" => api::node::v1::RuntimeClass,
            openapi_only "meta.k8s.io" "v1" "Status" => apimachinery::pkg::apis::meta::v1::Status,
            openapi_only "meta.k8s.io" "v1" "DeleteOptions" => apimachinery::pkg::apis::meta::v1::DeleteOptions,
        }
    };
}

pub(crate) use for_each_kind;
