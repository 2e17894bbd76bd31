//! batch/v1.
use super::Strategy;
use k8s_openapi::api::batch::v1::*;
impl Strategy for Job {}
impl Strategy for CronJob {}
