//! Maps a parsed [`Dbg`] tree onto the kind's OpenAPI schema: JSON field names and the special
//! encodings (`Time`, `Quantity`, `IntOrString`, bytes, `RawExtension`).

use super::debug::Dbg;
use super::*;

/// Non-pointer integer fields whose zero Go writes in protobuf but omits in JSON. Other zeros are
/// kept: a pointer field's zero (`replicas: 0`, `runAsUser: 0`) means something.
const OMITTED_ZEROS: &[&str] = &["generation", "minReadySeconds", "nodePort", "hostPort"];

fn norm(name: &str) -> String {
    name.trim_start_matches("r#")
        .replace('_', "")
        .to_ascii_lowercase()
}

fn field<'a>(fields: &'a [(String, Dbg)], name: &str) -> Option<&'a Dbg> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn num(d: &Dbg) -> Option<Value> {
    match d {
        Dbg::Num(n) => n
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| n.parse::<f64>().ok().map(Value::from)),
        _ => None,
    }
}

/// Maps a parsed value onto `schema`; `None` means "omit".
pub(super) fn to_json(s: &Schemas, d: &Dbg, schema: &Value) -> Option<Value> {
    let schema = s.resolve(schema);
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match d {
        Dbg::None => None,
        Dbg::Bool(b) => Some(json!(b)),
        Dbg::Num(_) => num(d),
        Dbg::Str(text) if text.is_empty() => None,
        Dbg::Str(text) => Some(json!(text)),
        Dbg::List(items) if format == "byte" => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|i| match i {
                    Dbg::Num(n) => n.parse().ok(),
                    _ => None,
                })
                .collect();
            Some(json!(B64.encode(bytes)))
        }
        Dbg::List(items) if items.is_empty() => None,
        Dbg::List(items) => {
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
            Some(Value::Array(
                items
                    .iter()
                    .map(|i| to_json(s, i, &item_schema).unwrap_or(Value::Null))
                    .collect(),
            ))
        }
        Dbg::Map(entries) if entries.is_empty() => None,
        Dbg::Map(entries) => {
            let value_schema = schema
                .get("additionalProperties")
                .cloned()
                .unwrap_or(Value::Null);
            let mut out = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Dbg::Str(k) => k.clone(),
                    Dbg::Num(n) => n.clone(),
                    _ => continue,
                };
                let value = match (v, &value_schema) {
                    // An empty string is a real map value ("key": "").
                    (Dbg::Str(text), _) => json!(text),
                    (v, vs) => to_json(s, v, vs).unwrap_or(Value::Null),
                };
                out.insert(key, value);
            }
            Some(Value::Object(out))
        }
        Dbg::Struct(name, fields) => {
            if format == "date-time" {
                let seconds = field(fields, "seconds").and_then(num)?.as_i64()?;
                let nanos = field(fields, "nanos")
                    .and_then(num)
                    .and_then(|n| n.as_i64())
                    .unwrap_or(0);
                if seconds == 0 && nanos == 0 {
                    return None;
                }
                let ts = jiff::Timestamp::new(seconds, nanos as i32).ok()?;
                let text = if nanos > 0 {
                    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
                } else {
                    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
                };
                return Some(json!(text));
            }
            if int_or_string {
                return match name.as_str() {
                    "Quantity" => field(fields, "string").and_then(|v| to_json(s, v, &Value::Null)),
                    _ => {
                        let ty = field(fields, "r#type").or_else(|| field(fields, "type"));
                        if ty.and_then(num).and_then(|t| t.as_i64()) == Some(1) {
                            field(fields, "str_val").and_then(|v| to_json(s, v, &Value::Null))
                        } else {
                            field(fields, "int_val").and_then(num)
                        }
                    }
                };
            }
            match name.as_str() {
                "RawExtension" => {
                    let Some(Dbg::List(bytes)) = field(fields, "raw") else {
                        return None;
                    };
                    let bytes: Vec<u8> = bytes
                        .iter()
                        .filter_map(|b| match b {
                            Dbg::Num(n) => n.parse().ok(),
                            _ => None,
                        })
                        .collect();
                    return serde_json::from_slice(&bytes).ok();
                }
                "Duration" if schema.get("properties").is_none() => {
                    return field(fields, "duration").and_then(|v| to_json(s, v, &Value::Null));
                }
                _ => {}
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let mut out = Map::new();
            for (fname, fv) in fields {
                let wanted = norm(fname);
                let Some((json_name, prop)) =
                    props.and_then(|p| p.iter().find(|(k, _)| k.to_ascii_lowercase() == wanted))
                else {
                    // Go's `json:",inline"` members (IngressRule's ingressRuleValue, Volume's
                    // volumeSource, Probe's handler, …) are a message of their own in protobuf
                    // but flat in JSON: map their fields onto this object's schema.
                    if matches!(fv, Dbg::Struct(..))
                        && let Some(Value::Object(inner)) = to_json(s, fv, schema)
                    {
                        out.extend(inner);
                    }
                    continue;
                };
                if matches!(fv, Dbg::Num(n) if n == "0")
                    && OMITTED_ZEROS.contains(&json_name.as_str())
                {
                    continue;
                }
                if let Some(v) = to_json(s, fv, prop) {
                    out.insert(json_name.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
    }
}
