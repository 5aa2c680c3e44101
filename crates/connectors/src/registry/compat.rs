//! Confluent compatibility levels, checked with apache-avro's `SchemaCompatibility`.
//!
//! For a new schema N and the registered versions V1..Vk of a subject (oldest first):
//!
//! | level | N must … |
//! |---|---|
//! | `BACKWARD` (default) | read data written with Vk (consumers upgrade first) |
//! | `BACKWARD_TRANSITIVE` | read data written with every Vi |
//! | `FORWARD` | be readable by Vk (producers upgrade first) |
//! | `FORWARD_TRANSITIVE` | be readable by every Vi |
//! | `FULL` | both, with Vk |
//! | `FULL_TRANSITIVE` | both, with every Vi |
//! | `NONE` | nothing |
//!
//! A check returns every reason found (empty = compatible); each reason names the version.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A subject's (or the registry's global) compatibility rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// The new schema reads data of the latest version.
    #[default]
    Backward,
    /// The new schema reads data of every version.
    BackwardTransitive,
    /// The latest version reads data of the new schema.
    Forward,
    /// Every version reads data of the new schema.
    ForwardTransitive,
    /// Backward and forward with the latest version.
    Full,
    /// Backward and forward with every version.
    FullTransitive,
    /// No check.
    None,
}

impl CompatibilityLevel {
    /// Every level, in Confluent's order.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
        CompatibilityLevel::None,
    ];

    /// The Confluent name (`BACKWARD_TRANSITIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
            CompatibilityLevel::None => "NONE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Why `new` may not follow `existing` (`(version, schema)`, oldest first) under this level;
    /// empty when it may.
    pub fn check(self, new: &Schema, existing: &[(u32, &Schema)]) -> Vec<String> {
        let against: &[(u32, &Schema)] = if self.transitive() {
            existing
        } else {
            existing.last().map(std::slice::from_ref).unwrap_or(&[])
        };
        let mut reasons = Vec::new();
        for (version, old) in against {
            if self.backward()
                && let Err(e) = can_read(old, new)
            {
                reasons.push(format!(
                    "the new schema cannot read data written with version {version}: {e}"
                ));
            }
            if self.forward()
                && let Err(e) = can_read(new, old)
            {
                reasons.push(format!(
                    "version {version} cannot read data written with the new schema: {e}"
                ));
            }
        }
        reasons
    }
}

/// Whether data written with `writer` can be read with `reader`.
///
/// apache-avro 0.21's checker reports every `decimal` field as inconclusive (its fast path
/// lists the other logical types but not decimals), so decimals are checked here: both schemas
/// are compared with decimals replaced by their underlying `bytes` / `fixed`, then every decimal
/// present in both at the same path must keep its scale (the bytes mean another number
/// otherwise) and the reader's precision must hold the writer's.
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    let (w, w_decimals) = without_decimals(writer);
    let (r, r_decimals) = without_decimals(reader);
    SchemaCompatibility::can_read(&w, &r).map_err(|e| chain(&e))?;
    for (path, (rp, rs)) in &r_decimals {
        if let Some((wp, ws)) = w_decimals.get(path) {
            if ws != rs {
                return Err(format!(
                    "decimal `{path}` has scale {ws} in the writer's schema and {rs} in the reader's"
                ));
            }
            if rp < wp {
                return Err(format!(
                    "decimal `{path}` has precision {wp} in the writer's schema but only {rp} in the reader's"
                ));
            }
        }
    }
    Ok(())
}

type Decimals = BTreeMap<String, (u64, u64)>;

/// The schema with decimals replaced by their underlying type, and the decimals found by path.
fn without_decimals(schema: &Schema) -> (Schema, Decimals) {
    let mut found = Decimals::new();
    let Ok(mut json) = serde_json::to_value(schema) else {
        return (schema.clone(), found);
    };
    strip(&mut json, "", &mut found);
    if found.is_empty() {
        return (schema.clone(), found);
    }
    match crate::no_panic::avro_schema_from_json(&json) {
        Ok(stripped) => (stripped, found),
        Err(_) => (schema.clone(), found),
    }
}

fn strip(json: &mut Json, path: &str, found: &mut Decimals) {
    match json {
        Json::Array(branches) => branches.iter_mut().for_each(|b| strip(b, path, found)),
        Json::Object(m) => {
            if m.get("logicalType").and_then(Json::as_str) == Some("decimal") {
                let p = m.get("precision").and_then(Json::as_u64).unwrap_or(0);
                let s = m.get("scale").and_then(Json::as_u64).unwrap_or(0);
                found.insert(path.to_string(), (p, s));
                for k in ["logicalType", "precision", "scale"] {
                    m.remove(k);
                }
            }
            if let Some(Json::Array(fields)) = m.get_mut("fields") {
                for f in fields {
                    let name = f
                        .get("name")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_string();
                    let sub = if path.is_empty() {
                        name
                    } else {
                        format!("{path}.{name}")
                    };
                    if let Some(t) = f.get_mut("type") {
                        strip(t, &sub, found);
                    }
                }
            }
            if let Some(items) = m.get_mut("items") {
                strip(items, &format!("{path}[]"), found);
            }
            if let Some(values) = m.get_mut("values") {
                strip(values, &format!("{path}{{}}"), found);
            }
            if let Some(t) = m.get_mut("type")
                && !t.is_string()
            {
                strip(t, path, found);
            }
        }
        _ => {}
    }
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        CompatibilityLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == up)
            .ok_or_else(|| {
                format!(
                    "unknown compatibility level `{s}`; expected one of {}",
                    CompatibilityLevel::ALL.map(|l| l.as_str()).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"r","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn levels_follow_confluent_semantics() {
        let v1 = s(r#"{"name":"a","type":"long"}"#);
        // Adds a field WITH a default: backward and forward compatible.
        let v2 =
            s(r#"{"name":"a","type":"long"},{"name":"b","type":["null","string"],"default":null}"#);
        // Adds a field WITHOUT default: forward only (old readers ignore it).
        let v3 = s(r#"{"name":"a","type":"long"},{"name":"c","type":"string"}"#);
        // Changes a type: neither.
        let v4 = s(r#"{"name":"a","type":"string"}"#);
        use CompatibilityLevel::*;
        assert!(Full.check(&v2, &[(1, &v1)]).is_empty());
        assert!(!Backward.check(&v3, &[(1, &v1)]).is_empty());
        assert!(Forward.check(&v3, &[(1, &v1)]).is_empty());
        assert!(!Full.check(&v3, &[(1, &v1)]).is_empty());
        assert!(None.check(&v4, &[(1, &v1)]).is_empty());
        let r = Backward.check(&v4, &[(1, &v1)]);
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("version 1"), "{r:?}");
        // Transitive levels look at every version, plain ones at the latest only.
        let v5 = s(r#"{"name":"c","type":"string"}"#);
        let v6 = s(r#"{"name":"c","type":"string"},{"name":"a","type":"long","default":0}"#);
        assert!(Backward.check(&v6, &[(1, &v1), (2, &v5)]).is_empty());
        let r = BackwardTransitive.check(&v6, &[(1, &v1), (2, &v5)]);
        assert!(r.len() == 1 && r[0].contains("version 1"), "{r:?}");
        assert!(Backward.check(&v4, &[]).is_empty());
    }

    #[test]
    fn decimals_are_compared_by_scale_and_precision() {
        let d = |p: u32, sc: u32| {
            s(&format!(
                r#"{{"name":"amount","type":["null",{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{sc}}}],"default":null}}"#
            ))
        };
        use CompatibilityLevel::*;
        // The same decimal schema is compatible with itself (apache-avro alone says no).
        assert!(Full.check(&d(12, 2), &[(1, &d(12, 2))]).is_empty());
        assert!(Backward.check(&d(14, 2), &[(1, &d(12, 2))]).is_empty());
        let r = Backward.check(&d(10, 2), &[(1, &d(12, 2))]);
        assert!(r.len() == 1 && r[0].contains("precision 12"), "{r:?}");
        let r = Backward.check(&d(12, 3), &[(1, &d(12, 2))]);
        assert!(r.len() == 1 && r[0].contains("scale 2"), "{r:?}");
        // A decimal against a long is still a type change (bytes → string would be a legal
        // Avro promotion, so that is not used here).
        let long_amount = s(r#"{"name":"amount","type":["null","long"],"default":null}"#);
        assert!(!Backward.check(&long_amount, &[(1, &d(12, 2))]).is_empty());
    }

    #[test]
    fn parses_names() {
        assert_eq!(
            "full_transitive".parse::<CompatibilityLevel>(),
            Ok(CompatibilityLevel::FullTransitive)
        );
        assert!(
            "SIDEWAYS"
                .parse::<CompatibilityLevel>()
                .unwrap_err()
                .contains("BACKWARD")
        );
        assert_eq!(
            serde_json::to_string(&CompatibilityLevel::ForwardTransitive).unwrap(),
            "\"FORWARD_TRANSITIVE\""
        );
    }
}
