//! The store's one error enum. Every variant carries etcd's exact gRPC code and message text, because
//! clients (etcdctl, client-go, the `etcd-client` crate) match on those strings.

use tonic::{Code, Status};

/// Errors a request to the store can end in. Converted to [`tonic::Status`] in exactly one place
/// (the `From` impl below).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: not capable")]
    NotCapable,
    /// The store is shutting down or its writer died; clients should retry elsewhere.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// Writing to disk failed. The store stops accepting writes after this.
    #[error("etcdserver: storage error: {0}")]
    Storage(String),
}

impl StoreError {
    /// The gRPC status code etcd uses for this error (etcd's `rpctypes` table).
    pub fn code(&self) -> Code {
        match self {
            StoreError::Compacted | StoreError::FutureRevision | StoreError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            StoreError::EmptyKey
            | StoreError::KeyNotFound
            | StoreError::ValueProvided
            | StoreError::LeaseProvided
            | StoreError::TooManyOps
            | StoreError::DuplicateKey
            | StoreError::RequestTooLarge
            | StoreError::InvalidSortOption => Code::InvalidArgument,
            StoreError::LeaseNotFound => Code::NotFound,
            StoreError::LeaseExists => Code::FailedPrecondition,
            StoreError::NotCapable => Code::Unimplemented,
            StoreError::Stopped => Code::Unavailable,
            StoreError::Storage(_) => Code::Internal,
        }
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// Errors of the write-ahead log and snapshots on disk.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("io error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt record in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: std::path::PathBuf,
        offset: u64,
        reason: String,
    },
}

impl From<WalError> for StoreError {
    fn from(err: WalError) -> StoreError {
        StoreError::Storage(err.to_string())
    }
}
