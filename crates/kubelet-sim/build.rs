//! Generates the gRPC health checking protocol (proto/grpc/health/v1): the client of the process
//! runtime's gRPC probes and the server of the agnhost built-in's `grpc-health-checking`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/grpc/health/v1/health.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure().compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
