//! Template hashing: the `pod-template-hash` label of Deployments' ReplicaSets and the names of
//! ControllerRevisions.
//!
//! Kubernetes computes FNV-32a over a `go-spew` dump of the Go struct, adds the collision count, and
//! encodes the decimal sum with `rand.SafeEncodeString`. niwa keeps the algorithm (FNV-32a, collision
//! count as four little-endian bytes, the same encoding and alphabet) but hashes the template's
//! canonical JSON (keys sorted, absent fields omitted) instead of a spew dump of Go structs, which has
//! no Rust equivalent. The values therefore differ from a real cluster's for the same template, which
//! nothing depends on: like Kubernetes, the controllers find "the ReplicaSet of this template" by
//! comparing templates (ignoring the hash label), never by hash value.

use serde_json::Value;

/// FNV-1a, 32 bits (Go's `hash/fnv.New32a`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv32a(u32);

impl Default for Fnv32a {
    fn default() -> Self {
        Fnv32a(0x811c_9dc5)
    }
}

impl Fnv32a {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
    pub fn sum32(&self) -> u32 {
        self.0
    }
}

/// Kubernetes' `rand.SafeEncodeString`: map every byte onto an alphabet without vowels or
/// look-alike characters, so that generated names never spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Write `v` as JSON with object keys sorted, so equal values always hash equally.
pub fn write_canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(inner) = map.get(*k) {
                    write_canonical_json(inner, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Hash of a serializable object plus an optional collision count, encoded as Kubernetes encodes
/// `controller.ComputeHash` (e.g. `5d59d67564`).
pub fn compute_hash<T: serde::Serialize>(object: &T, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(object).unwrap_or(Value::Null);
    let mut text = String::new();
    write_canonical_json(&value, &mut text);
    let mut h = Fnv32a::default();
    h.write(text.as_bytes());
    if let Some(c) = collision_count {
        // Go: binary.LittleEndian.PutUint32(buf, uint32(*collisionCount))
        h.write(&(c as u32).to_le_bytes());
    }
    safe_encode(&h.sum32().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        let mut h = Fnv32a::default();
        assert_eq!(h.sum32(), 0x811c9dc5);
        h.write(b"a");
        assert_eq!(h.sum32(), 0xe40c292c);
        let mut h = Fnv32a::default();
        h.write(b"foobar");
        assert_eq!(h.sum32(), 0xbf9cf968);
    }

    #[test]
    fn safe_encode_matches_kubernetes() {
        // rand.SafeEncodeString("1234567890") in Go.
        assert_eq!(safe_encode("1234567890"), "56789bcdf4");
        assert_eq!(safe_encode(""), "");
    }

    #[test]
    fn hash_ignores_key_order_and_depends_on_collision_count() {
        let a: Value = serde_json::json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b: Value = serde_json::json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        assert_eq!(compute_hash(&a, None), compute_hash(&b, None));
        assert_ne!(compute_hash(&a, None), compute_hash(&a, Some(1)));
        assert_ne!(compute_hash(&a, Some(1)), compute_hash(&a, Some(2)));
        assert!(compute_hash(&a, None).len() >= 8);
    }
}
