//! The gRPC health checking protocol (`grpc.health.v1`, generated from proto/grpc/health/v1):
//! the client of the process runtime's gRPC probes
//! ([`crate::runtime::process::probe::grpc`]) and the server of the agnhost built-in's
//! `grpc-health-checking` ([`crate::images::builtin::grpc_health`]).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("grpc.health.v1");
