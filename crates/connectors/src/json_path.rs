//! Dotted paths into JSON documents (`meta.next_token`, `data.card.id`): how API configs name
//! the fields they read. No wildcard or filter syntax: every use here names one field, and a
//! config that needs more should extract with a pipeline step instead.

use serde_json::Value;

/// The value at `path` (`a.b.c`; an empty path is the document itself), or `None` when a
/// segment is missing or the parent is not an object. A numeric segment indexes an array.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(doc);
    }
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The value at `path` as a plain string: strings as they are, numbers and booleans rendered,
/// `None` for null, missing, objects and arrays (they are not usable as keys or parameters).
pub fn lookup_scalar(doc: &Value, path: &str) -> Option<String> {
    match lookup(doc, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A path is well formed when it has no empty segment.
pub fn is_valid(path: &str) -> bool {
    path.is_empty() || path.split('.').all(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nested_fields_and_array_items() {
        let doc = json!({"meta": {"next_token": "t1", "n": 3}, "data": [{"id": "a"}]});
        assert_eq!(
            lookup_scalar(&doc, "meta.next_token").as_deref(),
            Some("t1")
        );
        assert_eq!(lookup_scalar(&doc, "meta.n").as_deref(), Some("3"));
        assert_eq!(lookup_scalar(&doc, "data.0.id").as_deref(), Some("a"));
        assert!(lookup(&doc, "data").is_some_and(Value::is_array));
        assert_eq!(lookup(&doc, "meta.missing"), None);
        assert_eq!(lookup_scalar(&doc, "meta"), None, "objects are not scalars");
        assert_eq!(lookup(&doc, ""), Some(&doc));
    }

    #[test]
    fn rejects_empty_segments() {
        assert!(is_valid("a.b"));
        assert!(!is_valid("a..b"));
        assert!(!is_valid(".a"));
    }
}
