//! Validation rules shared by every kind: field paths and errors worded as Kubernetes words them
//! ([`field`]), name and label syntax ([`names`]), and ObjectMeta ([`meta`]). Per-kind rules are in
//! [`crate::kinds`].
pub mod field;
pub mod meta;
pub mod names;
