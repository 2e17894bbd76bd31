//! Core-group kinds other than Pods and Services.
use super::Strategy;
use k8s_openapi::api::core::v1::*;
impl Strategy for Namespace {}
impl Strategy for Node {}
impl Strategy for ConfigMap {}
impl Strategy for Secret {}
impl Strategy for ServiceAccount {}
impl Strategy for Event {}
impl Strategy for PersistentVolume {}
impl Strategy for PersistentVolumeClaim {}
impl Strategy for ResourceQuota {}
impl Strategy for LimitRange {}
