//! The apiserver's only door to the store: objects as JSON under `/registry/...` keys, read and
//! written through the etcd v3 API (niwa-store or a real etcd). Writes are compare-and-swap
//! transactions on the key's mod revision, which is the object's resourceVersion.

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, KvClient, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchRequestSender, WatchResponseStream,
};
use serde_json::Value;

/// Storage failures, before they are given Kubernetes meaning by the REST layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("key already exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    /// The key's mod revision is not the expected one (optimistic concurrency).
    #[error("resource version conflict")]
    Conflict,
    #[error("required revision has been compacted (compacted at {0})")]
    Compacted(i64),
    #[error("stored object is not valid JSON: {0}")]
    Corrupt(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A key reserved together with a write (a Service's IP or port) is already taken.
    #[error("{0} is already reserved")]
    Reserved(String),
}

impl From<etcd_client::Error> for StorageError {
    fn from(err: etcd_client::Error) -> StorageError {
        if let etcd_client::Error::GRpcStatus(status) = &err
            && status
                .message()
                .contains("required revision has been compacted")
        {
            return StorageError::Compacted(0);
        }
        StorageError::Unavailable(err.to_string())
    }
}

/// A stored object with its mod revision.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    pub object: Value,
    pub revision: i64,
}

/// One page of a prefix read.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Stored>,
    /// The store revision the page was read at.
    pub revision: i64,
    /// Keys left after this page.
    pub remaining: i64,
}

#[derive(Clone)]
pub struct Storage {
    client: Client,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Storage")
    }
}

fn decode(key: &[u8], value: &[u8], revision: i64) -> Result<Stored, StorageError> {
    let object = serde_json::from_slice(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    Ok(Stored {
        key: String::from_utf8_lossy(key).into_owned(),
        object,
        revision,
    })
}

/// The value of a reservation key: which object holds it.
fn reservation(owner: &str) -> Vec<u8> {
    serde_json::json!({"owner": owner}).to_string().into_bytes()
}

/// The keys (with mod revisions) the `get`s of a failed transaction found.
fn existing(ops: Vec<TxnOpResponse>) -> Vec<(String, i64)> {
    ops.into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.mod_revision(),
                )
            }),
            _ => None,
        })
        .collect()
}

/// The end of the key range covering every key with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The largest store response the apiserver accepts (a range page, or a watch response carrying
/// a large transaction's events).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

impl Storage {
    pub async fn connect(endpoints: &[String]) -> Result<Storage, StorageError> {
        let client = Client::connect(endpoints, None).await?;
        Ok(Storage { client })
    }

    fn kv(&self) -> KvClient {
        // A page of 10,000 objects (the watch cache's initial list) is many MiB: lift tonic's
        // 4 MiB default, as etcd's own clients do.
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> Result<i64, StorageError> {
        // One key that never exists: the header carries the revision, and no range is counted.
        let resp = self
            .kv()
            .get("/registry/\0", Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    pub async fn get(&self, key: &str, revision: i64) -> Result<Option<Stored>, StorageError> {
        let mut opts = GetOptions::new();
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let resp = self.kv().get(key, Some(opts)).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(decode(kv.key(), kv.value(), kv.mod_revision())?)),
            None => Ok(None),
        }
    }

    /// Reads up to `limit` keys (0 = all) of `prefix` starting at `start` (inclusive), at
    /// `revision` (0 = latest).
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: i64,
        revision: i64,
    ) -> Result<Page, StorageError> {
        let mut opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let from = start.unwrap_or(prefix);
        let resp = self.kv().get(from, Some(opts)).await?;
        let items = resp
            .kvs()
            .iter()
            .map(|kv| decode(kv.key(), kv.value(), kv.mod_revision()))
            .collect::<Result<Vec<_>, _>>()?;
        let remaining = (resp.count() - items.len() as i64).max(0);
        Ok(Page {
            items,
            revision: resp.header().map(|h| h.revision()).unwrap_or(0),
            remaining,
        })
    }

    /// Creates `key` only if it does not exist; returns the new revision.
    pub async fn create(&self, key: &str, object: &Value) -> Result<i64, StorageError> {
        let value = serde_json::to_vec(object).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.kv().txn(txn).await?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists);
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Replaces `key` if its mod revision is still `expected`; returns the new revision.
    pub async fn update(
        &self,
        key: &str,
        object: &Value,
        expected: i64,
    ) -> Result<i64, StorageError> {
        let value = serde_json::to_vec(object).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.kv().txn(txn).await?;
        if !resp.succeeded() {
            return Err(StorageError::Conflict);
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Deletes `key` if its mod revision is still `expected`; returns the deletion revision.
    pub async fn delete(&self, key: &str, expected: i64) -> Result<i64, StorageError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await?;
        if !resp.succeeded() {
            let exists = resp.op_responses().iter().any(|op| match op {
                TxnOpResponse::Get(g) => !g.kvs().is_empty(),
                _ => false,
            });
            return Err(if exists {
                StorageError::Conflict
            } else {
                StorageError::NotFound
            });
        }
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Creates `key` and the reservation keys `reserve` in one transaction: none may exist.
    pub async fn create_reserving(
        &self,
        key: &str,
        object: &Value,
        reserve: &[String],
    ) -> Result<i64, StorageError> {
        let value = serde_json::to_vec(object).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let mut when = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        let mut then = vec![TxnOp::put(key, value, None)];
        let mut otherwise = vec![TxnOp::get(key, None)];
        for r in reserve {
            when.push(Compare::create_revision(r.as_str(), CompareOp::Equal, 0));
            then.push(TxnOp::put(r.as_str(), reservation(key), None));
            otherwise.push(TxnOp::get(r.as_str(), None));
        }
        let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
        let resp = self.kv().txn(txn).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or(0));
        }
        let found = existing(resp.op_responses());
        if found.first().is_some_and(|(k, _)| k == key) {
            return Err(StorageError::AlreadyExists);
        }
        Err(StorageError::Reserved(
            found.into_iter().next().map(|(k, _)| k).unwrap_or_default(),
        ))
    }

    /// Replaces `key` (at mod revision `expected`), reserving `reserve` (which must be free) and
    /// deleting `release`, in one transaction.
    pub async fn update_reserving(
        &self,
        key: &str,
        object: &Value,
        expected: i64,
        reserve: &[String],
        release: &[String],
    ) -> Result<i64, StorageError> {
        let value = serde_json::to_vec(object).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let mut when = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        let mut then = vec![TxnOp::put(key, value, None)];
        let mut otherwise = vec![TxnOp::get(key, None)];
        for r in reserve {
            when.push(Compare::create_revision(r.as_str(), CompareOp::Equal, 0));
            then.push(TxnOp::put(r.as_str(), reservation(key), None));
            otherwise.push(TxnOp::get(r.as_str(), None));
        }
        for r in release {
            then.push(TxnOp::delete(r.as_str(), None));
        }
        let txn = Txn::new().when(when).and_then(then).or_else(otherwise);
        let resp = self.kv().txn(txn).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or(0));
        }
        let found = existing(resp.op_responses());
        match found.iter().find(|(k, _)| k == key) {
            None => Err(StorageError::NotFound),
            Some((_, rev)) if *rev != expected => Err(StorageError::Conflict),
            Some(_) => Err(StorageError::Reserved(
                found
                    .into_iter()
                    .map(|(k, _)| k)
                    .find(|k| k != key)
                    .unwrap_or_default(),
            )),
        }
    }

    /// Deletes `key` (at mod revision `expected`) and the reservation keys `release` together.
    pub async fn delete_releasing(
        &self,
        key: &str,
        expected: i64,
        release: &[String],
    ) -> Result<i64, StorageError> {
        let mut then = vec![TxnOp::delete(key, None)];
        for r in release {
            then.push(TxnOp::delete(r.as_str(), None));
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then(then)
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or(0));
        }
        if existing(resp.op_responses()).is_empty() {
            Err(StorageError::NotFound)
        } else {
            Err(StorageError::Conflict)
        }
    }

    /// Every key under `prefix` (keys only).
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_keys_only();
        let resp = self.kv().get(prefix, Some(opts)).await?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect())
    }

    /// Watches every key under `prefix` from `start_revision`, with previous values (DELETED events
    /// carry the last state) and progress notifications.
    pub async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<(WatchRequestSender, WatchResponseStream), StorageError> {
        let opts = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(start_revision)
            .with_prev_key()
            .with_progress_notify();
        let stream = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .watch(prefix, Some(opts))
            .await?;
        Ok(stream.split())
    }
}
