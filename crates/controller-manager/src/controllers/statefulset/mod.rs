//! StatefulSet controller: stable identities, ordered or parallel pod management, rolling update
//! with partition or OnDelete, volumeClaimTemplates, ControllerRevisions. Decisions in [`core`].

pub mod core;
