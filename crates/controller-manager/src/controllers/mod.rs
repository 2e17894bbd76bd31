//! Every controller of the controller-manager, one directory each (decision core + shell), and the
//! list that `--controllers` selects from.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod job;
pub mod replicaset;
pub mod selection;
pub mod statefulset;
