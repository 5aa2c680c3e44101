//! PostgreSQL `COPY … TO STDOUT (FORMAT binary)` bytes into Arrow: every column kind, the stream
//! cut at an arbitrary point (as network reads cut it). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_connectors::postgres::{CopyDecoder, PgColumn, PgKind};

fn col(name: &str, kind: PgKind) -> PgColumn {
    PgColumn {
        name: name.into(),
        declared: "t".into(),
        kind,
        as_text: false,
        nullable: true,
    }
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
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let all = [
        col("b", PgKind::Bool),
        col("i2", PgKind::Int2),
        col("i4", PgKind::Int4),
        col("i8", PgKind::Int8),
        col("f4", PgKind::Float4),
        col("f8", PgKind::Float8),
        col("n", PgKind::Numeric { precision: 38, scale: 6 }),
        col("t", PgKind::Text),
        col("j", PgKind::Jsonb),
        col("u", PgKind::Uuid),
        col("y", PgKind::Bytea),
        col("d", PgKind::Date),
    ];
    // The first byte picks which columns the "table" has (at least one).
    let columns: Vec<PgColumn> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| shape & (1 << (i % 8)) != 0 || *i == (shape as usize % all.len()))
        .map(|(_, c)| c.clone())
        .collect();
    let Ok(mut decoder) = CopyDecoder::new("fuzz", &columns, 7) else {
        return;
    };
    let cut = if rest.is_empty() { 0 } else { shape as usize % rest.len() };
    if decoder.push(&rest[..cut]).is_err() || decoder.push(&rest[cut..]).is_err() {
        return;
    }
    let _ = decoder.take_ready();
    let _ = decoder.finish();
    }
);
