//! Services, Endpoints, EndpointSlices.
use super::Strategy;
impl Strategy for k8s_openapi::api::core::v1::Service {}
impl Strategy for k8s_openapi::api::core::v1::Endpoints {}
impl Strategy for k8s_openapi::api::discovery::v1::EndpointSlice {}
