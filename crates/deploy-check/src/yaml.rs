//! YAML documents as `serde_json` values, with anchors and `<<` merge keys
//! resolved the way docker compose and kubectl resolve them.

use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::Error;

/// Parses every document of `source` (a multi-document stream such as
/// `kubectl kustomize` output, or one compose file).
///
/// # Errors
/// [`Error::Yaml`] when the text is not YAML.
pub fn parse(source: &str) -> Result<Vec<Value>, Error> {
    let docs = YamlLoader::load_from_str(source).map_err(|err| Error::Yaml(err.to_string()))?;
    Ok(docs.iter().map(to_json).filter(|v| !v.is_null()).collect())
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(text.clone()), Value::Number),
        Yaml::Integer(n) => Value::from(*n),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(hash) => {
            // Merge keys first (earlier sources win among themselves), then
            // the mapping's own keys override them.
            let mut merged = Map::new();
            if let Some(sources) = hash.get(&Yaml::String("<<".to_owned())) {
                let sources = match sources {
                    Yaml::Array(list) => list.iter().collect::<Vec<_>>(),
                    single => vec![single],
                };
                for source in sources {
                    if let Value::Object(map) = to_json(source) {
                        for (key, value) in map {
                            merged.entry(key).or_insert(value);
                        }
                    }
                }
            }
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) if s == "<<" => continue,
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(n) => n.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                merged.insert(key, to_json(value));
            }
            Value::Object(merged)
        }
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

/// A scalar as the string a process would see in its environment
/// (`true`, `8080`, `text`); `None` for mappings, lists and null.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_and_anchors_resolve_with_local_keys_winning() {
        let docs = parse(
            "base: &base\n  a: 1\n  b: 2\nother: &other\n  c: 3\nsvc:\n  <<: [*base, *other]\n  b: 20\n",
        )
        .expect("yaml");
        assert_eq!(docs[0]["svc"], serde_json::json!({"a": 1, "b": 20, "c": 3}));
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse("---\na: x\n---\n---\nb: true\n").expect("yaml");
        assert_eq!(docs.len(), 2);
        assert_eq!(scalar(&docs[1]["b"]).as_deref(), Some("true"));
    }

    #[test]
    fn invalid_yaml_is_an_error() {
        assert!(parse("a: [1, 2\n").is_err());
    }
}
