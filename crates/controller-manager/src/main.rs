//! `niwa-controller-manager`: flags, logging, signals; everything else is in the library.

fn main() {}
