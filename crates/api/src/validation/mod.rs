//! Validation rules shared by every kind. Per-kind validation and defaulting build on these.
pub mod meta;
pub mod names;
