//! A binlog file (as `--binlog-files` reads it) through the CDC decoder: event framing, the
//! format description, TABLE_MAP metadata, rows of every type, compressed payloads, GTIDs and
//! DDL tracking. The seed corpus is the real MySQL / MariaDB fixture files. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use strata_connectors::mysql_cdc::binlog_files::BinlogFileReader;
use strata_connectors::mysql_cdc::ddl::DdlSchemas;

const DDL: &str = "CREATE TABLE test.tb1 (a INT); \
    CREATE TABLE noria.t1 (id INT PRIMARY KEY, body TEXT, code CHAR(2), a INT, b INT); \
    CREATE TABLE noria.t (t TIME); \
    CREATE TABLE test.orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2));";

const TABLES: [(&str, &str); 12] = [
    ("mysql", "t1"),
    ("mysql", "t"),
    ("mysql", "foo"),
    ("test", "tb1"),
    ("test", "t"),
    ("test", "orders"),
    ("noria", "t1"),
    ("noria", "t"),
    ("foo", "test"),
    ("dtb", "foo"),
    ("dtb", "bar"),
    ("toddy_test", "outbox"),
];

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
    let Ok(mut file) = tempfile_in_shm() else {
        return;
    };
    if file.1.write_all(data).is_err() {
        return;
    }
    let tables: Vec<(String, String)> = TABLES
        .iter()
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .collect();
    let Ok(ddl) = DdlSchemas::declared(DDL, "") else {
        return;
    };
    let Ok(mut reader) = BinlogFileReader::new(vec![file.0.clone()], None, &tables, ddl, "fuzz", 64)
    else {
        return;
    };
    for _ in 0..10_000 {
        match reader.next_transactions() {
            Ok(Some(txns)) => {
                for t in txns {
                    for e in t.events {
                        let _ = e.to_json();
                    }
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = std::fs::remove_file(&file.0);
    file.1.flush().ok();
    }
);

/// A file in /dev/shm (or the temp dir) holding this input.
fn tempfile_in_shm() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("strata-fuzz-binlog-{}", std::process::id()));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}
