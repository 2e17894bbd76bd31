//! apps/v1.
use super::Strategy;
use k8s_openapi::api::apps::v1::*;
impl Strategy for Deployment {}
impl Strategy for ReplicaSet {}
impl Strategy for DaemonSet {}
impl Strategy for StatefulSet {}
impl Strategy for ControllerRevision {}
