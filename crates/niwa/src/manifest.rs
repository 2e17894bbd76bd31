//! Manifests: objects read from files, directories (`.yaml`, `.yml`, `.json`, sorted by name,
//! `-R` to descend) or stdin (`-`); multi-document YAML (`---`), JSON (one object or a stream of
//! them), and `List` objects expanded into their items, as kubectl reads them.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::CliError;

/// One object and where it came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub source: String,
    pub object: Value,
}

const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// Reads every object named by `-f` arguments.
pub fn read(
    paths: &[String],
    recursive: bool,
    stdin: &mut dyn Read,
) -> Result<Vec<Document>, CliError> {
    if paths.is_empty() {
        return Err(CliError::Usage(
            "must specify one of -f and -k (-f FILE|DIR|-)".into(),
        ));
    }
    let mut docs = Vec::new();
    for path in paths {
        if path == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
            docs.extend(parse_source(&text, "STDIN")?);
            continue;
        }
        let p = Path::new(path);
        if p.is_dir() {
            for file in files_in(p, recursive)? {
                let source = file.display().to_string();
                docs.extend(parse_source(&read_file(&file)?, &source)?);
            }
        } else {
            docs.extend(parse_source(&read_file(p)?, path)?);
        }
    }
    Ok(docs)
}

fn read_file(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::Usage(format!("the path \"{}\" does not exist", path.display()))
        } else {
            CliError::Usage(format!("reading {}: {e}", path.display()))
        }
    })
}

/// The manifest files of a directory, sorted; subdirectories only when `recursive`.
fn files_in(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::Usage(format!("reading {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            if recursive {
                files.extend(files_in(&path, true)?);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            files.push(path);
        }
    }
    Ok(files)
}

fn parse_source(text: &str, source: &str) -> Result<Vec<Document>, CliError> {
    let objects =
        parse(text).map_err(|e| CliError::Usage(format!("error parsing {source}: {e}")))?;
    let mut docs = Vec::new();
    for object in objects {
        check(&object)
            .map_err(|e| CliError::Usage(format!("error validating \"{source}\": {e}")))?;
        docs.push(Document {
            source: source.to_string(),
            object,
        });
    }
    Ok(docs)
}

/// The objects of one manifest text: YAML documents or JSON values, Lists expanded, empty
/// documents skipped.
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    let mut values = Vec::new();
    if text.trim_start().starts_with(['{', '[']) {
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            values.push(value.map_err(|e| e.to_string())?);
        }
    } else {
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
            values.push(value);
        }
    }
    let mut out = Vec::new();
    for value in values {
        expand(value, &mut out);
    }
    Ok(out)
}

/// `kind: List` (or `PodList`, ...) → its items; a top-level JSON array → its elements.
fn expand(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.into_iter().for_each(|v| expand(v, out)),
        Value::Object(mut map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = map.remove("items") {
                items.into_iter().for_each(|v| expand(v, out));
            }
        }
        other => out.push(other),
    }
}

/// What every object needs before it can be sent: apiVersion, kind, a name.
fn check(object: &Value) -> Result<(), String> {
    if !object.is_object() {
        return Err(format!("expected an object, got {object}"));
    }
    let mut missing = Vec::new();
    for field in ["apiVersion", "kind"] {
        if object[field].as_str().is_none_or(str::is_empty) {
            missing.push(format!("{field} not set"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("error validating data: [{}]", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_document_yaml_and_lists() {
        let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data: {port: \"80\"}
---
# a comment-only document
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: s}}
- {apiVersion: v1, kind: Pod, metadata: {name: p}}
";
        let objects = parse(text).expect("parses");
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "s", "p"]);
        assert_eq!(objects[0]["data"]["port"], json!("80"));
    }

    #[test]
    fn json_objects_streams_and_arrays() {
        let text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#;
        assert_eq!(parse(text).expect("parses").len(), 2);
        let text = r#"[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]"#;
        assert_eq!(parse(text).expect("parses").len(), 1);
        assert!(parse("{not json").is_err());
        assert!(parse("a: [unclosed").is_err());
    }

    #[test]
    fn objects_need_api_version_and_kind() {
        assert_eq!(
            check(&json!({"metadata": {"name": "x"}})),
            Err("error validating data: [apiVersion not set, kind not set]".into())
        );
        assert!(check(&json!({"apiVersion": "v1", "kind": "Pod"})).is_ok());
    }

    #[test]
    fn directories_are_read_in_name_order() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write(
            "b.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
        );
        write(
            "a.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
        );
        write("notes.txt", "ignored");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        write(
            "sub/c.yml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
        );
        let path = dir.path().display().to_string();
        let names = |docs: Vec<Document>| -> Vec<String> {
            docs.iter()
                .map(|d| {
                    d.object["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        };
        let flat = read(std::slice::from_ref(&path), false, &mut std::io::empty()).expect("reads");
        assert_eq!(names(flat), ["a", "b"]);
        let deep = read(&[path], true, &mut std::io::empty()).expect("reads");
        assert_eq!(names(deep), ["a", "b", "c"]);
        let mut stdin = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n".as_bytes();
        let docs = read(&["-".into()], false, &mut stdin).expect("reads");
        assert_eq!(docs[0].source, "STDIN");
        let err = read(
            &["/nonexistent/x.yaml".into()],
            false,
            &mut std::io::empty(),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
