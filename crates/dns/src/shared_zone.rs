//! The zone as the server shares it: behind a lock for the watchers that change it and the
//! handlers that read it, with its SOA serial mirrored in an atomic so that the UDP answer cache
//! ([`crate::udp::cache`]) can tell whether a pre-encoded answer is still current without taking
//! the lock on every query.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::{RwLock, RwLockReadGuard};

use crate::zone::Zone;

#[derive(Debug)]
pub struct SharedZone {
    zone: RwLock<Zone>,
    /// `zone.serial()` as of the last [`SharedZone::update`]: the serial changes whenever an
    /// answer may have changed, so it versions every answer computed from the zone.
    serial: AtomicU32,
}

impl SharedZone {
    pub fn new(zone: Zone) -> Self {
        let serial = AtomicU32::new(zone.serial());
        Self {
            zone: RwLock::new(zone),
            serial,
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Zone> {
        self.zone.read()
    }

    /// Changes the zone, then publishes its new serial (while still holding the lock, so that no
    /// reader computes an answer from the new zone before the new serial is visible).
    pub fn update<R>(&self, change: impl FnOnce(&mut Zone) -> R) -> R {
        let mut zone = self.zone.write();
        let result = change(&mut zone);
        self.serial.store(zone.serial(), Ordering::Release);
        result
    }

    /// The serial of the zone as last published.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::ZoneConfig;

    #[test]
    fn publishes_the_serial_of_every_change() {
        let shared = SharedZone::new(Zone::new(ZoneConfig::new("cluster.local").expect("domain")));
        let before = shared.serial();
        assert_eq!(before, shared.read().serial());
        let service: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "127.96.0.20", "clusterIPs": ["127.96.0.20"]}
            }))
            .expect("service");
        shared.update(|zone| zone.apply_service(&service));
        assert_ne!(shared.serial(), before);
        assert_eq!(shared.serial(), shared.read().serial());
    }
}
