//! The check after every restart: the recovered history against what was acknowledged and seen.

use std::collections::BTreeMap;

use etcd_client::GetOptions;
use etcd_client::proto::PbEvent;

use crate::client::{Ack, connect, current_revision, event_rev, replay};
use crate::common::Store;

/// Checks the whole history of a put-only store: revisions 2..=current each exactly once, in order;
/// per key consecutive versions and a stable create revision; every acknowledged write at its
/// revision; everything a pre-crash watcher saw unchanged; a watch resumed after the last revision
/// that watcher saw delivering exactly the rest; and the latest values served by Range.
/// Returns the current revision.
pub(crate) async fn verify(store: &Store, acks: &[Ack], seen_before_crash: &[PbEvent]) -> i64 {
    let mut c = connect(store).await;
    let current = current_revision(&mut c).await;
    let events = replay(&mut c, 2, current).await;

    // Gap-free, duplicate-free, in order: a put-only history has one event per revision.
    assert_eq!(
        events.len() as i64,
        current - 1,
        "replay of revisions 2..={current} returned {} events",
        events.len()
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            event_rev(e),
            i as i64 + 2,
            "event #{i} of the replay has the wrong revision: {e:?}"
        );
        assert_eq!(
            e.r#type, 0,
            "unexpected delete in a put-only history: {e:?}"
        );
    }

    // Per key: versions count up from 1, the create revision is the first put's.
    let mut latest: BTreeMap<Vec<u8>, (i64, i64, Vec<u8>)> = BTreeMap::new();
    for e in &events {
        let Some(kv) = &e.kv else {
            panic!("event without kv: {e:?}")
        };
        let (create, version) = match latest.get(&kv.key) {
            Some((create, version, _)) => (*create, version + 1),
            None => (kv.mod_revision, 1),
        };
        assert_eq!(
            (kv.create_revision, kv.version),
            (create, version),
            "inconsistent create revision / version for {:?} at revision {}",
            String::from_utf8_lossy(&kv.key),
            kv.mod_revision
        );
        latest.insert(kv.key.clone(), (create, version, kv.value.clone()));
    }

    // Every acknowledged write, at the revision its response reported.
    for ack in acks {
        assert!(
            ack.revision >= 2 && ack.revision <= current,
            "acknowledged write {ack:?} is beyond the recovered revision {current}"
        );
        let e = &events[(ack.revision - 2) as usize];
        let kv = e.kv.as_ref();
        assert_eq!(
            kv.map(|kv| (kv.key.as_slice(), kv.value.as_slice())),
            Some((ack.key.as_bytes(), ack.value.as_bytes())),
            "acknowledged write {ack:?} is not in the recovered history"
        );
    }

    // What a watcher saw before the crash was durable: it must be there unchanged.
    for e in seen_before_crash {
        let rev = event_rev(e);
        assert!(
            rev >= 2 && rev <= current,
            "a watcher saw revision {rev} before the crash, but the store recovered only up to {current}"
        );
        assert_eq!(
            &events[(rev - 2) as usize],
            e,
            "the event a watcher saw at revision {rev} changed across the crash"
        );
    }

    // A watch resumed from the last revision seen misses nothing and repeats nothing.
    if let Some(last) = seen_before_crash.last().map(event_rev) {
        let resumed = replay(&mut c, last + 1, current).await;
        assert_eq!(
            resumed.as_slice(),
            &events[(last - 1) as usize..],
            "a watch resumed from revision {} differs from the replayed history",
            last + 1
        );
    }

    // Range serves the latest value of every key.
    let all = match c.get("", Some(GetOptions::new().with_all_keys())).await {
        Ok(r) => r,
        Err(e) => panic!("range over all keys: {e}"),
    };
    let served: BTreeMap<Vec<u8>, (i64, i64, Vec<u8>)> = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                (kv.create_revision(), kv.version(), kv.value().to_vec()),
            )
        })
        .collect();
    assert_eq!(served, latest, "Range disagrees with the replayed history");
    current
}
