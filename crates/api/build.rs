//! Generates the gRPC code of niwa's own API from proto/niwa.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/niwa/api/v1/resources.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure().compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
