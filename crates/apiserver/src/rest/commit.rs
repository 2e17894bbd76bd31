//! The last step of every write: the compare-and-swap on the store, with what some kinds add to
//! it — a Service's IP and port reservations travel in the same transaction (see
//! [`crate::services`]), and an object whose last finalizer is gone is deleted rather than
//! updated.

use niwa_api::{ApiError, ResourceInfo};
use serde_json::Value;

use super::Rest;
use crate::object;
use crate::services;
use crate::storage::StorageError;

/// Transactions retried when another apiserver took an address first.
const RESERVATION_RETRIES: usize = 8;

impl Rest {
    /// Stores a new object; allocates a Service's addresses. `dry_run` checks without writing.
    pub(super) async fn commit_create(
        &self,
        info: &'static ResourceInfo,
        key: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = object::name(&body).to_string();
        if !services::is_service(info) {
            if dry_run {
                if self.storage.get(key, 0).await?.is_some() {
                    return Err(ApiError::already_exists(info, &name));
                }
                return Ok(body);
            }
            let mut body = body;
            return match self.storage.create(key, &body).await {
                Ok(rev) => {
                    object::set_resource_version(&mut body, rev);
                    Ok(body)
                }
                Err(StorageError::AlreadyExists) => Err(ApiError::already_exists(info, &name)),
                Err(e) => Err(e.into()),
            };
        }
        for _ in 0..RESERVATION_RETRIES {
            let mut obj = body.clone();
            let alloc = self.services.allocate(info, &mut obj, None)?;
            if dry_run {
                self.services.rollback(&alloc);
                if self.storage.get(key, 0).await?.is_some() {
                    return Err(ApiError::already_exists(info, &name));
                }
                return Ok(obj);
            }
            match self
                .storage
                .create_reserving(key, &obj, &alloc.reserve)
                .await
            {
                Ok(rev) => {
                    object::set_resource_version(&mut obj, rev);
                    return Ok(obj);
                }
                Err(StorageError::Reserved(taken)) => {
                    self.services.rollback(&alloc);
                    self.services.mark_taken(&taken);
                }
                Err(StorageError::AlreadyExists) => {
                    self.services.rollback(&alloc);
                    return Err(ApiError::already_exists(info, &name));
                }
                Err(e) => {
                    self.services.rollback(&alloc);
                    return Err(e.into());
                }
            }
        }
        Err(ApiError::internal(
            "could not reserve the Service's addresses",
        ))
    }

    /// Stores an updated object over `current` (at `revision`), or deletes it when it is being
    /// deleted and its last finalizer is gone.
    pub(super) async fn commit_update(
        &self,
        info: &'static ResourceInfo,
        key: &str,
        current: &Value,
        revision: i64,
        mut updated: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = object::name(current).to_string();
        if dry_run {
            object::set_resource_version(&mut updated, revision);
            return Ok(updated);
        }
        if object::is_deleting(&updated) && !held(info, &updated) {
            self.commit_delete(info, key, &name, current, revision)
                .await?;
            return Ok(updated);
        }
        if !services::is_service(info) {
            return match self.storage.update(key, &updated, revision).await {
                Ok(rev) => {
                    object::set_resource_version(&mut updated, rev);
                    Ok(updated)
                }
                Err(StorageError::Conflict) => Err(ApiError::stale(info, &name)),
                Err(StorageError::NotFound) => Err(ApiError::not_found(info, &name)),
                Err(e) => Err(e.into()),
            };
        }
        for _ in 0..RESERVATION_RETRIES {
            let mut obj = updated.clone();
            let alloc = self.services.allocate(info, &mut obj, Some(current))?;
            let result = self
                .storage
                .update_reserving(key, &obj, revision, &alloc.reserve, &alloc.release)
                .await;
            match result {
                Ok(rev) => {
                    self.services.release(&alloc.release);
                    object::set_resource_version(&mut obj, rev);
                    return Ok(obj);
                }
                Err(StorageError::Reserved(taken)) => {
                    self.services.rollback(&alloc);
                    self.services.mark_taken(&taken);
                }
                Err(e) => {
                    self.services.rollback(&alloc);
                    return Err(match e {
                        StorageError::Conflict => ApiError::stale(info, &name),
                        StorageError::NotFound => ApiError::not_found(info, &name),
                        other => other.into(),
                    });
                }
            }
        }
        Err(ApiError::internal(
            "could not reserve the Service's addresses",
        ))
    }

    /// Deletes `current` (at `revision`) and whatever it reserved; returns the deletion revision.
    pub(super) async fn commit_delete(
        &self,
        info: &'static ResourceInfo,
        key: &str,
        name: &str,
        current: &Value,
        revision: i64,
    ) -> Result<i64, ApiError> {
        let release: Vec<String> = if services::is_service(info) {
            services::reservations(current).into_iter().collect()
        } else {
            Vec::new()
        };
        let result = if release.is_empty() {
            self.storage.delete(key, revision).await
        } else {
            self.storage.delete_releasing(key, revision, &release).await
        };
        match result {
            Ok(rev) => {
                self.services.release(&release);
                if info.group.is_empty() && info.kind == "Namespace" {
                    // A namespace finalized away: creates in it are refused from now on.
                    self.fence_namespaces(rev);
                }
                Ok(rev)
            }
            Err(StorageError::Conflict) => Err(ApiError::stale(info, name)),
            Err(StorageError::NotFound) => Err(ApiError::not_found(info, name)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether something still holds an object that is being deleted: finalizers, and for
/// Namespaces also `spec.finalizers` (emptied by the namespace controller through `finalize`).
pub(super) fn held(info: &ResourceInfo, obj: &Value) -> bool {
    if !object::finalizers(obj).is_empty() {
        return true;
    }
    info.group.is_empty()
        && info.kind == "Namespace"
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
}
