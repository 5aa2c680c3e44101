//! The Schema Registry's parsing of what clients send and fetch: a registration body
//! (`{"schema": "<Avro JSON>", "schemaType": …}`), then the schema as a writer schema and in a
//! compatibility check against itself. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_connectors::avro::decode::WriterSchema;
use strata_connectors::registry::compat::can_read;
use strata_connectors::registry::server::schema_from_body;

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
    if let Ok((normalized, schema)) = schema_from_body(data, 1 << 20) {
        let _ = can_read(&schema, &schema);
        let _ = WriterSchema::parse(1, &normalized);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = WriterSchema::parse(1, text);
    }
    }
);
