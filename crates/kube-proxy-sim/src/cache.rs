//! What the proxy knows of the cluster: Services and EndpointSlices from the watches, and each
//! Service's listeners, recomputed only for Services whose objects changed. IO-free.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::desired::{Desired, Node, ServiceListeners, merge, service_listeners};
use crate::model::endpoints::slice_service;

/// `(namespace, name)`.
pub type Key = (String, String);

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// The cache and the per-Service results.
#[derive(Debug)]
pub struct Cache {
    node: Node,
    services: BTreeMap<Key, Service>,
    /// Slices by their own key, with the Service they belong to.
    slices: HashMap<Key, (Key, EndpointSlice)>,
    /// Slice keys by Service.
    slices_by_service: HashMap<Key, BTreeSet<Key>>,
    listeners: BTreeMap<Key, ServiceListeners>,
    dirty: BTreeSet<Key>,
}

impl Cache {
    pub fn new(node: Node) -> Cache {
        Cache {
            node,
            services: BTreeMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            listeners: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub fn services(&self) -> usize {
        self.services.len()
    }

    pub fn apply_service(&mut self, service: Service) {
        if let Some(key) = key_of(&service.metadata) {
            self.dirty.insert(key.clone());
            self.services.insert(key, service);
        }
    }

    pub fn delete_service(&mut self, service: &Service) {
        if let Some(key) = key_of(&service.metadata) {
            self.services.remove(&key);
            self.dirty.insert(key);
        }
    }

    /// A re-list: the given Services are all there is.
    pub fn replace_services(&mut self, services: Vec<Service>) {
        let old: Vec<Key> = self.services.keys().cloned().collect();
        self.dirty.extend(old);
        self.services.clear();
        for service in services {
            self.apply_service(service);
        }
    }

    pub fn apply_slice(&mut self, slice: EndpointSlice) {
        let Some(key) = key_of(&slice.metadata) else {
            return;
        };
        self.delete_slice_key(&key);
        if let Some(service) = slice_service(&slice) {
            self.dirty.insert(service.clone());
            self.slices_by_service
                .entry(service.clone())
                .or_default()
                .insert(key.clone());
            self.slices.insert(key, (service, slice));
        }
    }

    pub fn delete_slice(&mut self, slice: &EndpointSlice) {
        if let Some(key) = key_of(&slice.metadata) {
            self.delete_slice_key(&key);
        }
    }

    fn delete_slice_key(&mut self, key: &Key) {
        if let Some((service, _)) = self.slices.remove(key) {
            if let Some(set) = self.slices_by_service.get_mut(&service) {
                set.remove(key);
                if set.is_empty() {
                    self.slices_by_service.remove(&service);
                }
            }
            self.dirty.insert(service);
        }
    }

    /// A re-list: the given EndpointSlices are all there is.
    pub fn replace_slices(&mut self, slices: Vec<EndpointSlice>) {
        let keys: Vec<Key> = self.slices.keys().cloned().collect();
        for key in keys {
            self.delete_slice_key(&key);
        }
        for slice in slices {
            self.apply_slice(slice);
        }
    }

    /// Recomputes the changed Services and returns the node's whole desired state, with the
    /// problems found in the changed Services.
    pub fn desired(&mut self) -> (Desired, Vec<String>) {
        let mut problems = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let Some(service) = self.services.get(&key) else {
                self.listeners.remove(&key);
                continue;
            };
            let slices = self
                .slices_by_service
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|k| self.slices.get(k).map(|(_, s)| s));
            let computed = service_listeners(service, slices, &self.node);
            problems.extend(computed.problems.iter().cloned());
            self.listeners.insert(key, computed);
        }
        (merge(self.listeners.values()), problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}}))
        .expect("service")
    }

    fn slice(name: &str, service: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns",
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip]}]}))
        .expect("slice")
    }

    fn backends(cache: &mut Cache) -> Vec<String> {
        let (desired, _) = cache.desired();
        desired
            .listeners
            .values()
            .flat_map(|s| {
                s.backends
                    .iter()
                    .map(|b| format!("{}->{b}", s.service.name))
            })
            .collect()
    }

    #[test]
    fn incremental_updates_follow_services_and_slices() {
        let mut cache = Cache::new(Node {
            name: "n1".into(),
            ip: "127.1.0.1".parse().expect("ip"),
        });
        cache.apply_service(svc("a", "127.96.0.2"));
        cache.apply_slice(slice("a-1", "a", "127.244.1.2"));
        assert_eq!(backends(&mut cache), ["a->127.244.1.2:8080"]);
        assert!(!cache.has_changes());
        cache.apply_slice(slice("a-2", "a", "127.244.1.3"));
        assert_eq!(
            backends(&mut cache),
            ["a->127.244.1.2:8080", "a->127.244.1.3:8080"]
        );
        // A slice moving to another Service leaves the first one.
        cache.apply_service(svc("b", "127.96.0.3"));
        cache.apply_slice(slice("a-2", "b", "127.244.1.3"));
        assert_eq!(
            backends(&mut cache),
            ["a->127.244.1.2:8080", "b->127.244.1.3:8080"]
        );
        cache.delete_slice(&slice("a-1", "a", ""));
        assert_eq!(backends(&mut cache), ["b->127.244.1.3:8080"]);
        cache.delete_service(&svc("b", ""));
        assert!(backends(&mut cache).is_empty());
        let (desired, _) = cache.desired();
        assert_eq!(
            desired.listeners.len(),
            1,
            "a keeps its listener, without backends"
        );
        // Re-lists replace everything.
        cache.replace_services(vec![svc("c", "127.96.0.4")]);
        cache.replace_slices(vec![slice("c-1", "c", "127.244.1.9")]);
        assert_eq!(backends(&mut cache), ["c->127.244.1.9:8080"]);
        assert_eq!(cache.services(), 1);
    }
}
