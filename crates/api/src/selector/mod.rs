//! Label selectors (equality and set-based, `-l` in kubectl and `labelSelector=` in the API) and field
//! selectors (`fieldSelector=`), parsed and matched exactly as Kubernetes does.

pub mod field;
pub mod label;

pub use field::FieldSelector;
pub use label::LabelSelector;

/// Why a selector string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("invalid label value: {value:?}: at key: {key:?}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    /// Kubernetes' wording for a field the resource does not support.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}
