//! Request bodies → JSON values: JSON (noting duplicate fields, which strict field validation
//! rejects), YAML, and the Kubernetes protobuf envelope.

use std::cell::RefCell;
use std::fmt;

use niwa_api::ApiError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::media::BodyFormat;
use super::protobuf;

/// A decoded body and the duplicate fields it contained (`spec.replicas`), in document order.
#[derive(Debug, Default)]
pub struct Decoded {
    pub value: Value,
    pub duplicates: Vec<String>,
}

/// Decodes a request body of the given format.
pub fn decode(format: BodyFormat, body: &[u8]) -> Result<Decoded, ApiError> {
    match format {
        BodyFormat::Json => decode_json(body),
        BodyFormat::Yaml => {
            let value: Value = serde_yaml_ng::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "error converting YAML to JSON: yaml: {}",
                    e.to_string().trim_end()
                ))
            })?;
            Ok(Decoded {
                value,
                duplicates: Vec::new(),
            })
        }
        BodyFormat::Protobuf => Ok(Decoded {
            value: protobuf::decode(body)?,
            duplicates: Vec::new(),
        }),
    }
}

/// JSON with duplicate-field detection (Go's `encoding/json` keeps the last value, as serde_json
/// does; Kubernetes' strict decoder reports the duplicates).
pub fn decode_json(body: &[u8]) -> Result<Decoded, ApiError> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Tracked {
        path: String::new(),
        dups: &dups,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|_| v))
    .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    Ok(Decoded {
        value,
        duplicates: dups.into_inner(),
    })
}

/// A `Value` deserializer that knows where it is and records duplicate keys.
struct Tracked<'a> {
    path: String,
    dups: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Tracked<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let seed = Tracked {
                path: format!("{}[{}]", self.path, out.len()),
                dups: self.dups,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let seed = Tracked {
                path: path.clone(),
                dups: self.dups,
            };
            let value = map.next_value_seed(seed)?;
            if out.insert(key, value).is_some() {
                self.dups.borrow_mut().push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_reported_with_their_path() {
        let body = br#"{"spec":{"replicas":1,"replicas":2,"template":{"spec":{"containers":[{"name":"a","name":"b"}]}}}}"#;
        let d = decode_json(body).unwrap_or_default();
        assert_eq!(d.value["spec"]["replicas"], 2);
        assert_eq!(
            d.duplicates,
            vec![
                "spec.replicas".to_string(),
                "spec.template.spec.containers[0].name".to_string()
            ]
        );
        assert!(decode_json(b"{").is_err());
        assert!(decode_json(b"{} x").is_err());
    }

    #[test]
    fn yaml_bodies() {
        let d = decode(BodyFormat::Yaml, b"kind: Pod\nmetadata:\n  name: a\n").unwrap_or_default();
        assert_eq!(d.value["metadata"]["name"], "a");
    }
}
