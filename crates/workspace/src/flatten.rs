//! Nested JSON → one flat record (see `docs/nested-json-flattening.md`).
//!
//! 1. A scalar field (string, number, boolean, null) keeps its name and value.
//! 2. An object field is replaced by its fields, named `parent.child`, at every level.
//! 3. An array field becomes one field holding the array as compact JSON text.
//!
//! A top-level value that is not an object becomes the record `{"value": …}` (arrays as JSON
//! text, like any array). Field names are kept as they are; only dots are added between levels.
//! When two paths give the same name (`{"a.b": 1, "a": {"b": 2}}`) the later one wins.
//! An empty nested object contributes no column.

use serde_json::Value;

use crate::connectors::Record;

/// Flattens one JSON value into a record.
pub fn flatten(value: Value) -> Record {
    let mut out = Record::new();
    match value {
        // Already flat (the usual case): kept as it is.
        Value::Object(map) if !map.values().any(|v| v.is_object() || v.is_array()) => {
            return map;
        }
        Value::Object(map) => {
            for (key, value) in map {
                flatten_into(&mut out, key, value);
            }
        }
        other => {
            out.insert("value".to_string(), scalar_or_text(other));
        }
    }
    out
}

fn flatten_into(out: &mut Record, name: String, value: Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let mut child = String::with_capacity(name.len() + 1 + key.len());
                child.push_str(&name);
                child.push('.');
                child.push_str(&key);
                flatten_into(out, child, value);
            }
        }
        other => {
            out.insert(name, scalar_or_text(other));
        }
    }
}

/// Scalars as they are; arrays and objects as compact JSON text.
fn scalar_or_text(value: Value) -> Value {
    match value {
        Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
        scalar => scalar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(record: &Record) -> Vec<&str> {
        record.keys().map(String::as_str).collect()
    }

    #[test]
    fn nested_objects_become_dotted_columns() {
        let record = flatten(json!({"customer": {"id": 1, "name": "A"}}));
        assert_eq!(keys(&record), ["customer.id", "customer.name"]);
        assert_eq!(record["customer.id"], json!(1));
        assert_eq!(record["customer.name"], json!("A"));
    }

    #[test]
    fn the_documented_example() {
        let record = flatten(json!({
            "id": 1001,
            "customer": { "id": 1, "name": "A", "address": { "city": "Oslo", "zip": "0150" } },
            "tags": ["vip", "b2b"],
            "items": [ { "sku": "X1", "qty": 2 } ],
            "paid": true,
            "note": null
        }));
        assert_eq!(
            keys(&record),
            [
                "id",
                "customer.id",
                "customer.name",
                "customer.address.city",
                "customer.address.zip",
                "tags",
                "items",
                "paid",
                "note"
            ]
        );
        assert_eq!(record["id"], json!(1001));
        assert_eq!(record["customer.address.zip"], json!("0150"));
        assert_eq!(record["tags"], json!(r#"["vip","b2b"]"#));
        assert_eq!(record["items"], json!(r#"[{"sku":"X1","qty":2}]"#));
        assert_eq!(record["paid"], json!(true));
        assert_eq!(record["note"], Value::Null);
    }

    #[test]
    fn scalars_are_kept_and_names_untouched() {
        let record = flatten(json!({"Weird Name": 1.5, "ÄÖ": "x", "n": -3}));
        assert_eq!(record["Weird Name"], json!(1.5));
        assert_eq!(record["ÄÖ"], json!("x"));
        assert_eq!(record["n"], json!(-3));
    }

    #[test]
    fn top_level_non_objects_become_value() {
        assert_eq!(flatten(json!(5))["value"], json!(5));
        assert_eq!(flatten(json!("s"))["value"], json!("s"));
        assert_eq!(flatten(Value::Null)["value"], Value::Null);
        assert_eq!(flatten(json!([1, 2]))["value"], json!("[1,2]"));
    }

    #[test]
    fn empty_objects_give_no_columns_and_empty_arrays_are_text() {
        let record = flatten(json!({"a": {}, "b": [], "c": {"d": {}}}));
        assert_eq!(keys(&record), ["b"]);
        assert_eq!(record["b"], json!("[]"));
    }

    #[test]
    fn deep_nesting() {
        let record = flatten(json!({"a": {"b": {"c": {"d": true}}}}));
        assert_eq!(record["a.b.c.d"], json!(true));
    }
}
