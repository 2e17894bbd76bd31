//! The process's pods by namespace and name, with their last status: what the kubelet API (logs,
//! exec, port-forward) looks pods up in.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodStatus;
use parking_lot::RwLock;

use crate::runtime::PodHandle;

/// What the API server needs to know about a pod this process runs.
#[derive(Clone, Debug)]
pub struct IndexedPod {
    pub handle: PodHandle,
    pub status: Arc<PodStatus>,
}

/// Pods by namespace and name, for the kubelet API (logs, exec).
#[derive(Debug, Default)]
pub struct PodIndex {
    pods: RwLock<HashMap<(String, String), IndexedPod>>,
}

impl PodIndex {
    pub fn get(&self, namespace: &str, name: &str) -> Option<IndexedPod> {
        self.pods
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.pods.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn put(&self, handle: &PodHandle, status: Arc<PodStatus>) {
        let key = (handle.namespace().to_string(), handle.name().to_string());
        self.pods.write().insert(
            key,
            IndexedPod {
                handle: handle.clone(),
                status,
            },
        );
    }

    pub(super) fn remove(&self, namespace: &str, name: &str, uid: &str) {
        let mut pods = self.pods.write();
        let key = (namespace.to_string(), name.to_string());
        if pods.get(&key).is_some_and(|p| p.handle.uid == uid) {
            pods.remove(&key);
        }
    }
}
