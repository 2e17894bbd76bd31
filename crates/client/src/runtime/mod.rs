//! The controller runtime (kube-rs' `kube-runtime` is the model): level-triggered controllers
//! built from a [`watcher()`] (list → watch → re-list), a [`reflector()`] store (the cache
//! reconciles read), a deduplicating [`WorkQueue`], and the [`Controller`] loop that ties them
//! together.

pub mod backoff;
pub mod controller;
pub mod queue;
pub mod reflector;
pub mod watcher;

pub use backoff::Backoff;
pub use controller::{Action, Controller};
pub use queue::WorkQueue;
pub use reflector::{Store, Writer, reflector};
pub use watcher::watcher;
