//! Generates the gRPC code of niwa's own API from proto/niwa.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/niwa/api/v1/resources.proto";
    println!("cargo:rerun-if-changed={proto}");
    // A watch event's object is `Bytes`: the apiserver sends one event's encoding to every
    // watcher, and a `Vec<u8>` field would make each of them a copy.
    tonic_prost_build::configure()
        .bytes(".niwa.api.v1.WatchEvent.object")
        .compile_protos(&[proto], &["../../proto"])?;
    // The kubelet API (owned by niwa-kubelet), compiled here so the apiserver can proxy to it.
    let kubelet = "../../proto/niwa/kubelet/v1/kubelet.proto";
    println!("cargo:rerun-if-changed={kubelet}");
    tonic_prost_build::configure().compile_protos(&[kubelet], &["../../proto"])?;
    Ok(())
}
