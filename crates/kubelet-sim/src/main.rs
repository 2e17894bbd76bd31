//! `niwa-kubelet`: flags, logging and signals; the work is in the library.

fn main() {}
