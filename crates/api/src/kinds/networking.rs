//! networking.k8s.io/v1.
use super::Strategy;
use k8s_openapi::api::networking::v1::*;
impl Strategy for Ingress {}
impl Strategy for IngressClass {}
