//! Deployment controller: ReplicaSets per pod template, rolling update / Recreate, revisions and
//! rollback, proportional scaling, progress deadline. Decisions in [`core`], helpers in [`util`].

pub mod core;
pub mod util;
