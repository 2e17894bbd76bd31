//! The IO-free core of the event recorder: client-go's `EventCorrelator` with an injected clock.
//!
//! Three steps, in client-go's order:
//! 1. **Spam filter**: a token bucket per source + object (burst 25, one more every 5 minutes);
//!    events beyond it are dropped.
//! 2. **Aggregation**: events that differ only in their message (same source, object, type,
//!    reason) are combined once 10 distinct messages are seen within 10 minutes: the message
//!    becomes `(combined from similar events): <message>` and they count as one event.
//! 3. **Deduplication**: an event identical to one already written bumps that event's `count`
//!    and `lastTimestamp` (a patch) instead of creating another object.
//!
//! Each cache holds at most [`CACHE_SIZE`] entries (client-go's 4096), least recently used
//! evicted first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

/// Entries per cache.
pub const CACHE_SIZE: usize = 4096;
/// Distinct messages after which similar events are combined.
const AGGREGATE_MAX_EVENTS: usize = 10;
/// Window of the aggregation.
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
const AGGREGATE_PREFIX: &str = "(combined from similar events): ";
/// Spam filter: burst, and one token per this period.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);

/// What to do with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this new Event.
    Create(Event),
    /// Bump the existing Event `name` in `namespace`; if it is gone, create `event` instead.
    Patch {
        namespace: String,
        name: String,
        count: i32,
        last_timestamp: Time,
        message: String,
        event: Event,
    },
    /// Too many events for this object: dropped.
    Drop,
}

/// A map that forgets its least recently used entry beyond `CACHE_SIZE` entries. `order` maps
/// each entry's last-use tick to its key, so eviction is O(log n) instead of a scan of all 4,096
/// entries per insert (which made every Event of a busy recorder, e.g. the scheduler's one
/// "Scheduled" per pod, cost tens of microseconds once the cache was full).
struct Lru<K, V> {
    map: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    fn new() -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        let (v, t) = self.map.get_mut(key)?;
        if let Some(k) = self.order.remove(t) {
            self.order.insert(tick, k);
        }
        *t = tick;
        Some(v)
    }

    fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if let Some((_, old)) = self.map.get(&key) {
            self.order.remove(old);
        } else if self.map.len() >= CACHE_SIZE
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.map.remove(&oldest);
        }
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (value, self.tick));
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Similar {
    messages: HashSet<String>,
    last: Instant,
}

struct Logged {
    namespace: String,
    name: String,
    count: i32,
    first_timestamp: Option<Time>,
}

/// The correlator's state.
pub struct Correlator {
    spam: Lru<String, Bucket>,
    similar: Lru<String, Similar>,
    logged: Lru<String, Logged>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator::new()
    }
}

fn source_and_object(e: &Event) -> String {
    let src = e.source.clone().unwrap_or_default();
    let o = &e.involved_object;
    [
        src.component.unwrap_or_default(),
        src.host.unwrap_or_default(),
        o.kind.clone().unwrap_or_default(),
        o.namespace.clone().unwrap_or_default(),
        o.name.clone().unwrap_or_default(),
        o.uid.clone().unwrap_or_default(),
        o.api_version.clone().unwrap_or_default(),
    ]
    .join("\u{1f}")
}

fn aggregate_key(e: &Event) -> String {
    [
        source_and_object(e),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
    ]
    .join("\u{1f}")
}

fn event_key(e: &Event) -> String {
    [
        source_and_object(e),
        e.involved_object.field_path.clone().unwrap_or_default(),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        e.message.clone().unwrap_or_default(),
    ]
    .join("\u{1f}")
}

impl Correlator {
    pub fn new() -> Correlator {
        Correlator {
            spam: Lru::new(),
            similar: Lru::new(),
            logged: Lru::new(),
        }
    }

    /// Decides about `event` (a fresh Event with count 1 and first = last timestamp), observed
    /// at `now` on the monotonic clock.
    pub fn observe(&mut self, mut event: Event, now: Instant) -> Decision {
        if !self.allow(&event, now) {
            return Decision::Drop;
        }
        let key = self.aggregate(&mut event, now);
        let last_timestamp = event
            .last_timestamp
            .clone()
            .unwrap_or_else(|| Time(jiff::Timestamp::now()));
        if let Some(logged) = self.logged.get_mut(&key) {
            logged.count = logged.count.saturating_add(1);
            event.count = Some(logged.count);
            event.first_timestamp = logged.first_timestamp.clone();
            event.metadata.name = Some(logged.name.clone());
            event.metadata.namespace = Some(logged.namespace.clone());
            return Decision::Patch {
                namespace: logged.namespace.clone(),
                name: logged.name.clone(),
                count: logged.count,
                last_timestamp,
                message: event.message.clone().unwrap_or_default(),
                event,
            };
        }
        self.logged.insert(
            key,
            Logged {
                namespace: event.metadata.namespace.clone().unwrap_or_default(),
                name: event.metadata.name.clone().unwrap_or_default(),
                count: event.count.unwrap_or(1),
                first_timestamp: event.first_timestamp.clone(),
            },
        );
        Decision::Create(event)
    }

    fn allow(&mut self, event: &Event, now: Instant) -> bool {
        let key = source_and_object(event);
        let refill = |b: &mut Bucket| {
            let earned =
                now.saturating_duration_since(b.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
            b.tokens = (b.tokens + earned).min(SPAM_BURST);
            b.at = now;
        };
        match self.spam.get_mut(&key) {
            Some(bucket) => {
                refill(bucket);
                if bucket.tokens >= 1.0 {
                    bucket.tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
            None => {
                self.spam.insert(
                    key,
                    Bucket {
                        tokens: SPAM_BURST - 1.0,
                        at: now,
                    },
                );
                true
            }
        }
    }

    /// Records the message among its similar events; past the threshold, rewrites the event
    /// into the combined one. Returns the deduplication key.
    fn aggregate(&mut self, event: &mut Event, now: Instant) -> String {
        let key = aggregate_key(event);
        let message = event.message.clone().unwrap_or_default();
        let fresh = || Similar {
            messages: HashSet::new(),
            last: now,
        };
        let count = match self.similar.get_mut(&key) {
            Some(similar) => {
                if now.saturating_duration_since(similar.last) > AGGREGATE_INTERVAL {
                    *similar = fresh();
                }
                similar.messages.insert(message.clone());
                similar.last = now;
                similar.messages.len()
            }
            None => {
                let mut similar = fresh();
                similar.messages.insert(message.clone());
                self.similar.insert(key.clone(), similar);
                1
            }
        };
        if count < AGGREGATE_MAX_EVENTS {
            return event_key(event);
        }
        event.message = Some(format!("{AGGREGATE_PREFIX}{message}"));
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn event(name: &str, reason: &str, message: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                api_version: Some("v1".into()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Warning".into()),
            count: Some(1),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("n1".into()),
            }),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_bump_the_count_of_the_first_event() {
        let mut c = Correlator::new();
        let now = Instant::now();
        assert!(matches!(
            c.observe(event("web.1", "BackOff", "back-off"), now),
            Decision::Create(e) if e.metadata.name.as_deref() == Some("web.1")
        ));
        for expected in 2..=4 {
            match c.observe(event("web.x", "BackOff", "back-off"), now) {
                Decision::Patch { name, count, .. } => {
                    assert_eq!(name, "web.1");
                    assert_eq!(count, expected);
                }
                other => panic!("expected a patch, got {other:?}"),
            }
        }
        // A different reason is a different event.
        assert!(matches!(
            c.observe(event("web.2", "Pulled", "pulled"), now),
            Decision::Create(_)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn similar_messages_are_combined_after_ten() {
        let mut c = Correlator::new();
        let now = Instant::now();
        for i in 0..9 {
            let d = c.observe(event(&format!("web.{i}"), "Failed", &format!("m{i}")), now);
            assert!(matches!(d, Decision::Create(_)), "event {i}: {d:?}");
        }
        let d = c.observe(event("web.9", "Failed", "m9"), now);
        let Decision::Create(combined) = d else {
            panic!("the first combined event is created, got {d:?}")
        };
        assert_eq!(
            combined.message.as_deref(),
            Some("(combined from similar events): m9")
        );
        let d = c.observe(event("web.10", "Failed", "m10"), now);
        assert!(
            matches!(&d, Decision::Patch { name, count: 2, message, .. }
                if name == "web.9" && message == "(combined from similar events): m10"),
            "{d:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_limited_to_the_burst_then_one_per_five_minutes() {
        let mut c = Correlator::new();
        let now = Instant::now();
        let allowed = (0..40)
            .filter(|i| {
                c.observe(event(&format!("e{i}"), &format!("R{i}"), "m"), now) != Decision::Drop
            })
            .count();
        assert_eq!(allowed, 25);
        let later = now + Duration::from_secs(300);
        assert_ne!(c.observe(event("x", "Rx", "m"), later), Decision::Drop);
        assert_eq!(c.observe(event("y", "Ry", "m"), later), Decision::Drop);
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let mut lru: Lru<usize, usize> = Lru::new();
        for i in 0..CACHE_SIZE {
            lru.insert(i, i);
        }
        assert!(lru.get_mut(&0).is_some(), "0 is now the most recent");
        lru.insert(CACHE_SIZE, 0);
        assert!(lru.get_mut(&1).is_none(), "1 was the oldest");
        assert!(lru.get_mut(&0).is_some());
        lru.insert(2, 7); // an update evicts nothing
        assert_eq!(lru.get_mut(&2).copied(), Some(7));
        assert_eq!(lru.map.len(), CACHE_SIZE);
        assert_eq!(lru.order.len(), CACHE_SIZE);
    }
}
