//! A walk over an Avro datum that allocates nothing, run before apache-avro decodes it.
//!
//! apache-avro 0.21 (still the newest release that builds with our set) trusts the bytes: an
//! array or map block count reserves `count × size_of::<Value>()` up front, so five bytes can
//! ask for tens of GiB and the failed allocation aborts the process; a block of nulls costs no
//! input bytes at all; a recursive schema recurses as deep as the data says. This walk follows
//! the same grammar and refuses, with the reason, any datum that
//! - is longer than [`MAX_MESSAGE_BYTES`];
//! - nests deeper than [`MAX_DEPTH`];
//! - holds more than [`MAX_VALUES`] values in all (so a decoded message stays within tens of MB);
//! - declares a string, bytes or fixed longer than the bytes left;
//! - ends early, or uses a union branch or enum symbol that does not exist.
//!
//! Only a datum that passes is handed to apache-avro, whose own allocation cap
//! (`max_allocation_bytes`) is set to the message cap as a second line.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, Namespace, RecordSchema};

/// The largest framed message decoded (Kafka's own default limit is 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// The deepest nesting of records, arrays, maps and unions.
pub const MAX_DEPTH: usize = 64;
/// The most values (of any type, nested ones included) in one datum.
pub const MAX_VALUES: usize = 1_000_000;

/// Checks that `bytes` is a datum of `schema` that decodes within the bounds above.
pub fn check_datum(
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    bytes: &[u8],
) -> Result<(), String> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "the datum is {} bytes, over the {MAX_MESSAGE_BYTES}-byte limit",
            bytes.len()
        ));
    }
    let mut walk = Walk {
        names,
        bytes,
        at: 0,
        values: 0,
    };
    walk.value(schema, &None, 0)
}

struct Walk<'a> {
    names: &'a HashMap<Name, Schema>,
    bytes: &'a [u8],
    at: usize,
    values: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), String> {
        if n > self.left() {
            return Err(format!(
                "a {what} of {n} bytes at byte {} runs past the end of the datum ({} left)",
                self.at,
                self.left()
            ));
        }
        self.at += n;
        Ok(())
    }

    /// A zig-zag varint long, as Avro writes them (at most 10 bytes).
    fn long(&mut self) -> Result<i64, String> {
        let start = self.at;
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(format!("the datum ends inside a number at byte {start}"));
            };
            self.at += 1;
            if shift == 63 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(format!("a number over 64 bits at byte {start}"))
    }

    fn count(&mut self, n: usize) -> Result<(), String> {
        self.values = self
            .values
            .checked_add(n)
            .filter(|v| *v <= MAX_VALUES)
            .ok_or_else(|| format!("more than {MAX_VALUES} values in one datum"))?;
        Ok(())
    }

    fn length(&mut self, what: &str) -> Result<usize, String> {
        let at = self.at;
        let len = self.long()?;
        usize::try_from(len).map_err(|_| format!("a negative {what} length {len} at byte {at}"))
    }

    fn value(&mut self, schema: &Schema, ns: &Namespace, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.count(1)?;
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1, "boolean"),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long().map(drop),
            Schema::Float => self.skip(4, "float"),
            Schema::Double => self.skip(8, "double"),
            Schema::Duration => self.skip(12, "duration"),
            Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => {
                let len = self.length("string/bytes")?;
                self.skip(len, "string/bytes")
            }
            Schema::Fixed(f) => self.skip(f.size, "fixed"),
            Schema::Decimal(d) => self.value(&d.inner, ns, depth + 1),
            Schema::Enum(e) => {
                let at = self.at;
                let i = self.long()?;
                if usize::try_from(i).is_ok_and(|i| i < e.symbols.len()) {
                    Ok(())
                } else {
                    Err(format!("enum index {i} at byte {at} is not a symbol"))
                }
            }
            Schema::Union(u) => {
                let at = self.at;
                let i = self.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union branch {i} at byte {at} does not exist"))?;
                self.value(branch, ns, depth + 1)
            }
            Schema::Array(a) => self.blocks(ns, depth, |w, ns| w.value(&a.items, ns, depth + 1)),
            Schema::Map(m) => self.blocks(ns, depth, |w, ns| {
                let len = w.length("map key")?;
                w.skip(len, "map key")?;
                w.value(&m.types, ns, depth + 1)
            }),
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let inner = name.fully_qualified_name(ns).namespace;
                for f in fields {
                    self.value(&f.schema, &inner, depth + 1)?;
                }
                Ok(())
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns);
                let names = self.names;
                let resolved = names
                    .get(&full)
                    .ok_or_else(|| format!("the schema refers to an unknown type `{full}`"))?;
                self.value(resolved, &full.namespace, depth + 1)
            }
        }
    }

    /// Array/map blocks: a count (negative: followed by the block's byte size), 0 ends.
    fn blocks(
        &mut self,
        ns: &Namespace,
        depth: usize,
        mut item: impl FnMut(&mut Self, &Namespace) -> Result<(), String>,
    ) -> Result<(), String> {
        if depth + 1 > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        loop {
            let at = self.at;
            let raw = self.long()?;
            let n = match raw {
                0 => return Ok(()),
                n if n < 0 => {
                    self.long()?;
                    n.checked_neg()
                        .ok_or_else(|| format!("block count {raw} at byte {at}"))?
                }
                n => n,
            };
            let n = usize::try_from(n).map_err(|_| format!("block count {raw} at byte {at}"))?;
            // Counted before any item is walked: this is the reservation apache-avro makes.
            if n > MAX_VALUES - self.values {
                return Err(format!(
                    "a block of {n} items at byte {at} is over the {MAX_VALUES}-value limit"
                ));
            }
            for _ in 0..n {
                item(self, ns)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    fn parse(text: &str) -> (Schema, HashMap<Name, Schema>) {
        let schema = Schema::parse_str(text).expect("schema");
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema)
            .expect("resolved")
            .get_names()
            .iter()
            .map(|(k, v)| (k.clone(), (*v).clone()))
            .collect();
        (schema, names)
    }

    #[test]
    fn a_valid_datum_passes_as_apache_avro_writes_it() {
        let text = r#"{"type":"record","name":"r","fields":[
            {"name":"a","type":{"type":"array","items":"long"}},
            {"name":"m","type":{"type":"map","values":["null","string"]}},
            {"name":"f","type":{"type":"fixed","name":"f4","size":4}},
            {"name":"e","type":{"type":"enum","name":"e","symbols":["X","Y"]}},
            {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}}]}"#;
        let (schema, names) = parse(text);
        let value = Value::Record(vec![
            (
                "a".into(),
                Value::Array(vec![Value::Long(-1), Value::Long(1 << 40)]),
            ),
            (
                "m".into(),
                Value::Map(
                    [(
                        "k".to_string(),
                        Value::Union(1, Box::new(Value::String("v".into()))),
                    )]
                    .into(),
                ),
            ),
            ("f".into(), Value::Fixed(4, vec![1, 2, 3, 4])),
            ("e".into(), Value::Enum(1, "Y".into())),
            ("d".into(), Value::Decimal(vec![0x30, 0x39].into())),
        ]);
        let bytes = apache_avro::to_avro_datum(&schema, value).expect("encode");
        assert_eq!(check_datum(&schema, &names, &bytes), Ok(()));
        for cut in 0..bytes.len() {
            assert!(
                check_datum(&schema, &names, &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    /// The zig-zag varint Avro writes for `v`.
    fn long(v: i64) -> Vec<u8> {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
        out
    }

    #[test]
    fn a_huge_block_count_is_refused_before_any_allocation() {
        let (schema, names) = parse(r#"{"type":"array","items":"null"}"#);
        // One block of 2^40 nulls, and nothing else: apache-avro would reserve 2^40 Values.
        let err = check_datum(&schema, &names, &long(1 << 40)).expect_err("refused");
        assert!(err.contains("value limit"), "{err}");
        // Blocks of 100,000 nulls cost 3 input bytes each: twenty of them pass the total cap.
        let many: Vec<u8> = (0..20).flat_map(|_| long(100_000)).chain([0]).collect();
        let err = check_datum(&schema, &names, &many).expect_err("refused");
        assert!(err.contains("value limit"), "{err}");
        let few: Vec<u8> = (0..5).flat_map(|_| long(100_000)).chain([0]).collect();
        assert_eq!(check_datum(&schema, &names, &few), Ok(()));
    }

    #[test]
    fn deep_recursion_and_overlong_strings_are_refused() {
        let (schema, names) = parse(
            r#"{"type":"record","name":"node","fields":[{"name":"next","type":["null","node"]}]}"#,
        );
        // Branch 1 ("node") a thousand times: nested far past MAX_DEPTH.
        let deep = vec![2u8; 1000];
        let err = check_datum(&schema, &names, &deep).expect_err("refused");
        assert!(err.contains("deeper"), "{err}");
        let (schema, names) = parse(r#""string""#);
        // A string claiming 2^30 bytes in a 6-byte datum.
        let err = check_datum(&schema, &names, &[0x80, 0x80, 0x80, 0x80, 0x08, b'x'])
            .expect_err("refused");
        assert!(err.contains("past the end"), "{err}");
    }
}
