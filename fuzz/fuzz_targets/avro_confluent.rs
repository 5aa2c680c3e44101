//! Confluent-framed Avro (magic byte, schema id, datum) decoded against writer schemas with
//! every shape that allocates from counts in the bytes: arrays, maps, strings, bytes, fixed,
//! unions, decimals and a recursive record. Must never panic, abort or allocate unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use strata_connectors::avro::decode::{WriterSchema, unframe};

const SCHEMAS: [&str; 4] = [
    r#"{"type":"record","name":"iot","fields":[
        {"name":"device_id","type":"string"},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"temperature","type":["null","double"]},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"attrs","type":{"type":"map","values":"long"}},
        {"name":"raw","type":"bytes"}]}"#,
    r#"{"type":"record","name":"money","fields":[
        {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}},
        {"name":"fx","type":{"type":"fixed","name":"f16","size":16,"logicalType":"decimal","precision":30,"scale":4}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"kind","type":{"type":"enum","name":"k","symbols":["A","B","C"]}}]}"#,
    r#"{"type":"record","name":"node","fields":[
        {"name":"v","type":"int"},
        {"name":"next","type":["null","node"]},
        {"name":"kids","type":{"type":"array","items":"node"}}]}"#,
    r#"{"type":"array","items":{"type":"map","values":["null","string","bytes","float"]}}"#,
];

fn schemas() -> &'static Vec<WriterSchema> {
    static S: OnceLock<Vec<WriterSchema>> = OnceLock::new();
    S.get_or_init(|| {
        SCHEMAS
            .iter()
            .enumerate()
            .map(|(i, s)| WriterSchema::parse(i as u32 + 1, s).expect("schema"))
            .collect()
    })
}

fuzz_target!(
    init: {
        // Panics our guards catch (third-party parsers that panic on bad input) are not
        // findings; libfuzzer-sys' own hook would abort on them before they unwind. A panic
        // that escapes still aborts (libfuzzer-sys catches it at the top) and is kept as a
        // crash. `STRATA_FUZZ_SHOW_PANICS=1` prints them.
        if std::env::var_os("STRATA_FUZZ_SHOW_PANICS").is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    },
    |data: &[u8]| {
    let Ok((id, datum)) = unframe(data) else {
        return;
    };
    let schema = &schemas()[id as usize % SCHEMAS.len()];
    if let Ok(value) = schema.decode(datum) {
        let _ = schema.to_json(&value);
    }
    }
);
