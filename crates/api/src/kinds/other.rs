//! coordination, events, policy, autoscaling.
use super::Strategy;
impl Strategy for k8s_openapi::api::coordination::v1::Lease {}
impl Strategy for k8s_openapi::api::events::v1::Event {}
impl Strategy for k8s_openapi::api::policy::v1::PodDisruptionBudget {}
impl Strategy for k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler {}
