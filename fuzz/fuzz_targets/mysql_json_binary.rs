//! MySQL's binary JSON (the JSON column format of the binlog) parsed by mysql_common and printed
//! by Strata as MySQL prints it: nested objects / arrays with offsets and counts from the bytes,
//! and opaque values. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysql_common::binlog::jsonb;
use mysql_common::io::ParseBuf;
use strata_connectors::mysql_cdc::json_binary::to_text;

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
    let parsed = std::panic::catch_unwind(|| ParseBuf(data).parse::<jsonb::Value<'_>>(()).ok());
    // A panic inside mysql_common's own parser is its finding, reported separately; ours is
    // what runs on what it returns.
    if let Ok(Some(value)) = parsed {
        let _ = to_text(value);
    }
    }
);
