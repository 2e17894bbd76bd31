//! Patching, IO-free: the patch merge keys of the built-in kinds ([`schema`]), strategic merge
//! patch with its directives ([`strategic`]), and field ownership with server-side apply
//! ([`managed`]).

pub mod managed;
pub mod schema;
pub mod strategic;
