//! Helpers shared by the controllers: pod predicates, owner references and adoption, expectations,
//! a controller's own latest writes, template hashing, and Kubernetes' defaults for the workload kinds.

pub mod cidr;
pub mod expectations;
pub mod hash;
pub mod own_writes;
pub mod owner;
pub mod pod;
pub mod revision;
pub mod scheduling;
pub mod semantic;
