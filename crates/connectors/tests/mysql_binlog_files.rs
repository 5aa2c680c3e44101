//! Archived binlog files written by real MySQL 8.0–9.6 and MariaDB 10.5 servers
//! (`tests/fixtures/mysql-binlogs/`, see its README) read by the `--binlog-files` reader through
//! the live reader's decoder: every event becomes the Debezium event, or a documented refusal.

#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use strata_connectors::mysql_cdc::binlog_files::{BinlogFileReader, list};
use strata_connectors::mysql_cdc::ddl::DdlSchemas;
use strata_connectors::mysql_cdc::{ChangeEvent, GtidSet, Position};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mysql-binlogs")
        .join(name)
}

fn tables(list: &[&str]) -> Vec<(String, String)> {
    list.iter()
        .map(|t| {
            let (d, t) = t.split_once('.').expect("db.table");
            (d.to_string(), t.to_string())
        })
        .collect()
}

struct Read {
    events: Vec<ChangeEvent>,
    positions: Vec<Position>,
}

/// Every transaction of `source` (a file or folder) after `from`, capturing `captured`, with
/// `ddl` declared.
fn read_from(
    source: &Path,
    from: Option<&Position>,
    captured: &[&str],
    ddl: &str,
) -> strata_connectors::Result<Read> {
    let files = list(source)?;
    let ddl = DdlSchemas::declared(ddl, "").expect("ddl");
    let mut reader = BinlogFileReader::new(files, from, &tables(captured), ddl, "fixture", 2)?;
    let mut read = Read {
        events: Vec::new(),
        positions: Vec::new(),
    };
    while let Some(txns) = reader.next_transactions()? {
        for t in txns {
            read.positions.push(t.position.clone());
            read.events.extend(t.events);
        }
    }
    Ok(read)
}

fn read(file: &str, captured: &[&str], ddl: &str) -> strata_connectors::Result<Read> {
    read_from(&fixture(file), None, captured, ddl)
}

/// `op`, `before`, `after` of each event.
fn changes(events: &[ChangeEvent]) -> Vec<Json> {
    events
        .iter()
        .map(|e| {
            let j = e.to_json();
            json!([j["op"], j["before"], j["after"]])
        })
        .collect()
}

fn last_gtid_set(r: &Read) -> String {
    r.positions
        .last()
        .and_then(|p| p.gtid_set.clone())
        .unwrap_or_default()
}

#[test]
fn mysql_8_0_26_full_row_metadata_types_invisible_columns_by_name() {
    let r = read("binlog-invisible-columns.000001", &["mysql.t1"], "").unwrap();
    assert_eq!(
        changes(&r.events),
        vec![
            json!(["c", null, {"f1": 1, "f2": 2, "f3": -3, "f4": "4", "f5": "BQ==", "f6": 6_000_000_000u64}]),
            json!(["c", null, {"f1": null, "f2": null, "f3": -33, "f4": "44", "f5": "VQ==", "f6": null}]),
            json!(["u", {"f1": null, "f2": null, "f3": -33, "f4": "44", "f5": "VQ==", "f6": null},
                   {"f1": 111, "f2": 222, "f3": -333, "f4": "444", "f5": "VQ==", "f6": null}]),
        ]
    );
    let uuid = "97c7af02-4c50-11ec-acd8-681842034964";
    assert_eq!(
        r.events[0].source.gtid.as_deref(),
        Some(format!("{uuid}:3").as_str())
    );
    assert_eq!(last_gtid_set(&r), format!("{uuid}:1-5"));
    let ends: Vec<u64> = r.positions.iter().map(|p| p.pos).collect();
    assert_eq!(ends, [491, 787, 1120, 1438, 1787], "after each commit");
}

#[test]
fn bit_enum_and_set_columns() {
    let bit = read("mysql_type_bit.000001", &["mysql.foo"], "").unwrap();
    // BIT(3) b'100' and BIT(8) 0x20 as bytes (base64), TEXT as text.
    assert_eq!(
        changes(&bit.events),
        vec![json!(["c", null, {"a": "BA==", "b": "foo", "c": "IA=="}])]
    );
    let e = read("mysql-enum-string-set.000001", &["mysql.t"], "").unwrap();
    let ops: Vec<String> = e.events.iter().map(|e| e.op.letter().to_string()).collect();
    assert_eq!(ops, ["c", "u", "d"]);
    let after = e.events[1].after.as_ref().unwrap();
    assert_eq!(after["f1"], "field1");
    assert_eq!(after["f3"], "variant2", "ENUM label from the TABLE_MAP");
    assert_eq!(after["f4"], "two,four", "SET labels from the TABLE_MAP");
    assert_eq!(e.events[2].before.as_ref().unwrap()["f4"], "two,four");
}

#[test]
fn zstd_transaction_payload_is_opened_and_positioned_at_its_end() {
    let ddl = "CREATE TABLE test.tb1 (a INT);";
    let r = read("transaction_compression.000001", &["test.tb1"], ddl).unwrap();
    assert_eq!(changes(&r.events), vec![json!(["c", null, {"a": 1}])]);
    // Inner events have no offsets: the row is at the payload's start, the commit at its end.
    assert_eq!((r.events[0].source.pos, r.events[0].source.row), (274, 0));
    assert_eq!(r.positions.len(), 1);
    assert_eq!(r.positions[0].pos, 431);
    assert_eq!(
        last_gtid_set(&r),
        "357df524-4139-11ee-9979-b033ee13919e:1",
        "the GTID state from PREVIOUS_GTIDS (the transaction is anonymous)"
    );
}

#[test]
fn minimal_row_metadata_needs_a_declared_schema_and_says_so() {
    let e = read("minimal_row_metadata.000001", &["noria.t1"], "")
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("noria.t1") && e.contains("MINIMAL") && e.contains("--schema-ddl"),
        "{e}"
    );
    let ddl = "CREATE TABLE noria.t1 (id INT PRIMARY KEY, body TEXT, code CHAR(2), a INT, b INT);";
    let r = read("minimal_row_metadata.000001", &["noria.t1"], ddl).unwrap();
    // A minimal row image: only the columns the INSERT set are logged. `b` is unsigned per the
    // event's signedness flags, whatever the declared schema says.
    assert_eq!(
        changes(&r.events),
        vec![json!(["c", null, {"id": 1, "code": "a", "b": 3_230_202_323u64}])]
    );
    assert_eq!(r.events[0].key(), Some(json!({"id": 1})));
}

#[test]
fn negative_time_values() {
    let r = read(
        "time_issue.000001",
        &["noria.t"],
        "CREATE TABLE noria.t (t TIME);",
    )
    .unwrap();
    // -507:48:27 (checked by hand from the TIME2 bytes), in microseconds.
    assert_eq!(
        changes(&r.events),
        vec![json!(["c", null, {"t": -1_828_107_000_000i64}])]
    );
}

#[test]
fn a_file_with_only_previous_gtids_hands_out_nothing() {
    let r = read(
        "binlog_transaction_previous_GTID_no_tag.000001",
        &["test.t"],
        "",
    )
    .unwrap();
    assert!(r.events.is_empty() && r.positions.is_empty());
}

#[test]
fn functional_index_hidden_columns_follow_the_ddl_and_never_show() {
    // MINIMAL metadata: the schema comes from the file's own CREATE TABLE + ALTER TABLE, where
    // the functional index's hidden column sits between `a` and the later `b`.
    let r = read("rpl_unfiltered_hidden_gcol.000001", &["test.t"], "").unwrap();
    assert_eq!(
        changes(&r.events),
        vec![json!(["c", null, {"a": 1, "b": "1"}])]
    );
    assert_eq!(
        r.events[0].source.file, "rpl_unfiltered_hidden_gcol.000001",
        "positions name the file read, not the relay log's ROTATE names"
    );
}

#[test]
fn json_documents_with_opaque_values_and_partial_json_refused() {
    let r = read("json-opaque.binlog", &["foo.test"], "").unwrap();
    let docs: Vec<Json> = r
        .events
        .iter()
        .map(|e| e.after.as_ref().unwrap()["a"].clone())
        .collect();
    assert_eq!(
        docs,
        [
            r#"{"a": "base64:type15:VQ=="}"#,
            r#"{"b": "2012-03-18"}"#,
            r#"{"c": "2012-03-18 11:30:45.000000"}"#,
            r#"{"c": "87:31:46.654321"}"#,
            r#"{"d": 123.456}"#,
            r#"{"e": 9.00}"#,
            r#"{"e": [0, 1, true, false]}"#,
            r#"{"e": null}"#,
        ]
    );
    // MySQL 8.0.22 with binlog_row_value_options=PARTIAL_JSON: the full inserts and updates are
    // handed out, then the partial update (only the changed paths) is refused, named.
    let files = list(&fixture("json.binlog.000001")).unwrap();
    let mut reader = BinlogFileReader::new(
        files,
        None,
        &tables(&["mysql.t"]),
        DdlSchemas::default(),
        "fixture",
        1000,
    )
    .unwrap();
    let first = reader.next_transactions().unwrap().unwrap();
    let ops: String = first
        .iter()
        .flat_map(|t| &t.events)
        .map(|e| e.op.letter())
        .collect();
    assert_eq!(
        ops, "ccccccuuuuuu",
        "the inserts and the full update before the partial one"
    );
    let e = reader.next_transactions().unwrap_err().to_string();
    assert!(
        e.contains("json_col") && e.contains("PARTIAL_JSON") && e.contains("json.binlog.000001"),
        "{e}"
    );
    assert_eq!(
        reader.resume_position().pos,
        first.last().unwrap().position.pos,
        "a rerun continues right before the refused transaction"
    );
}

#[test]
fn mysql_9_vectors_and_text_after_them() {
    let r = read("vector.binlog", &["dtb.foo", "dtb.bar"], "").unwrap();
    assert_eq!(r.events.len(), 10);
    assert_eq!(
        r.events[3].after,
        json!({"id": 2, "vector_column": [1.01, -1.01], "foo": "bar",
               "vector_column2": [42.0, 43.0, 44.0, 45.0]})
        .as_object()
        .cloned()
    );
    assert_eq!(r.events[8].op.letter(), "d");
    assert_eq!(r.events[8].key(), Some(json!({"id": 2})));
    // Two rows of one rows event: same position, row 0 and 1.
    assert_eq!(
        (r.events[0].source.pos, r.events[1].source.pos),
        (1085, 1085)
    );
    assert_eq!((r.events[0].source.row, r.events[1].source.row), (0, 1));
}

#[test]
fn mysql_9_6_tagged_gtids_resume() {
    let ddl =
        "CREATE TABLE test.orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(10,2));";
    let r = read(
        "binlog_transaction_with_GTID_TAG.000001",
        &["test.orders"],
        ddl,
    )
    .unwrap();
    assert_eq!(
        changes(&r.events),
        vec![json!(["c", null, {"id": 3, "customer_id": 100, "amount": "250.00"}])]
    );
    let uuid = "55778904-0299-11f1-b1b8-4ef0c4956feb";
    assert_eq!(
        r.events[0].source.gtid.as_deref(),
        Some(format!("{uuid}:mytag:3").as_str())
    );
    let state = last_gtid_set(&r);
    let set = GtidSet::parse(&state).unwrap();
    assert!(state.contains(":mytag:") && state.contains("3"), "{state}");
    assert_eq!(set.to_string(), state, "canonical");
    // The set is what a MySQL 8.4 dump by GTID is asked to start after.
    let sids = set.mysql_sids().unwrap();
    assert!(sids.iter().any(|s| s.tag().is_some()), "{sids:?}");
}

#[test]
fn mariadb_10_5_gtids_and_v1_rows() {
    let r = read("mariadb-bin.000001", &["toddy_test.outbox"], "").unwrap();
    let ids: Vec<Json> = r
        .events
        .iter()
        .map(|e| e.after.as_ref().unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [json!(62), json!(63)]);
    assert_eq!(
        r.events[0].after.as_ref().unwrap()["created"],
        "2022-04-20T22:18:04Z"
    );
    let gtids: Vec<&str> = r
        .positions
        .iter()
        .filter_map(|p| p.gtid.as_deref())
        .collect();
    assert_eq!(gtids, ["0-1-1", "0-1-2"]);
    assert_eq!(last_gtid_set(&r), "0-1-2");
}

fn copy(dir: &Path, name: &str, from: &str, len: Option<usize>) {
    let bytes = std::fs::read(fixture(from)).unwrap();
    let bytes = &bytes[..len.unwrap_or(bytes.len())];
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn a_folder_is_read_in_binlog_order_and_resumed_after_a_position() {
    let dir = tempfile::tempdir().unwrap();
    // Numeric order (9 before 10), not name order; the index file is not a binlog.
    copy(dir.path(), "binlog.000010", "vector.binlog", None);
    copy(dir.path(), "binlog.000009", "mariadb-bin.000001", None);
    std::fs::write(dir.path().join("binlog.index"), "./binlog.000009\n").unwrap();
    let captured = ["toddy_test.outbox", "dtb.foo", "dtb.bar"];
    let all = read_from(dir.path(), None, &captured, "").unwrap();
    assert_eq!(all.events.len(), 12);
    assert_eq!(all.events[0].source.file, "binlog.000009");
    assert_eq!(all.events[2].source.file, "binlog.000010");
    // Resume after every handed-out position: exactly the rest, never a repeat.
    for (i, p) in all.positions.iter().enumerate() {
        let rest = read_from(dir.path(), Some(p), &captured, "").unwrap();
        assert_eq!(rest.positions, all.positions[i + 1..], "after {p:?}");
        let expected: usize = all
            .events
            .iter()
            .filter(|e| {
                strata_connectors::mysql_cdc::resume::compare(
                    &e.source.file,
                    e.source.pos,
                    &p.file,
                    p.pos,
                ) == std::cmp::Ordering::Greater
            })
            .count();
        assert_eq!(rest.events.len(), expected);
    }
}

#[test]
fn a_cut_file_is_refused_unless_it_is_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the first data transaction's second rows event.
    copy(dir.path(), "binlog.000001", "vector.binlog", Some(1300));
    copy(dir.path(), "binlog.000002", "mariadb-bin.000001", None);
    let captured = ["toddy_test.outbox", "dtb.foo", "dtb.bar"];
    let e = read_from(dir.path(), None, &captured, "")
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("binlog.000001") && e.contains("more files follow"),
        "{e}"
    );
    std::fs::remove_file(dir.path().join("binlog.000002")).unwrap();
    // The last file may still be being written: its open transaction is not handed out.
    let r = read_from(dir.path(), None, &captured, "").unwrap();
    assert!(r.events.is_empty(), "{:?}", changes(&r.events));
    assert_eq!(r.positions.len(), 3, "the DDL transactions before the cut");
}

#[test]
fn fuzz_finding_a_rows_event_whose_column_count_disagrees_is_refused_at_once() {
    // Found by the `mysql_binlog` fuzz target: a real file with one rows event's column count
    // changed. mysql_common looped over the declared count for minutes and grew past 8 GiB.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz/rows_column_count_mismatch.binlog");
    let started = std::time::Instant::now();
    let e = read_from(&path, None, &["mysql.t"], "")
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("columns, its TABLE_MAP"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn fuzz_finding_a_rows_event_with_no_columns_in_its_image_is_refused_at_once() {
    // Found by the `mysql_binlog` fuzz target: an empty column bitmap made mysql_common's row
    // iterator yield empty rows forever (past 4 GiB in two minutes).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz/rows_without_columns.binlog");
    let started = std::time::Instant::now();
    let e = read_from(&path, None, &["mysql.t"], "")
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("more rows than"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn fuzz_finding_a_damaged_payload_header_is_an_error_not_a_panic() {
    // Found by the `mysql_binlog` fuzz target: mysql_common indexes past the end of it.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz/payload_header_cut.binlog");
    let captured = ["mysql.t", "test.tb1", "mysql.t1", "mysql.foo"];
    assert!(read_from(&path, None, &captured, "").is_err());
}

/// Every transaction, or part of one, of `source` after `from`, in parts of `part` events;
/// with the events each handed out.
fn read_parts(source: &Path, from: Option<&Position>, part: usize) -> (Read, Vec<usize>) {
    let files = list(source).unwrap();
    let captured = tables(&["toddy_test.outbox", "dtb.foo", "dtb.bar"]);
    let ddl = DdlSchemas::declared("", "").expect("ddl");
    let mut reader = BinlogFileReader::new(files, from, &captured, ddl, "fixture", 1)
        .unwrap()
        .with_part_events(part);
    let mut read = Read {
        events: Vec::new(),
        positions: Vec::new(),
    };
    let mut sizes = Vec::new();
    while let Some(txns) = reader.next_transactions().unwrap() {
        for t in txns {
            read.positions.push(t.position.clone());
            sizes.push(t.events.len());
            read.events.extend(t.events);
        }
    }
    (read, sizes)
}

#[test]
fn a_transaction_handed_out_in_parts_resumes_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path(), "binlog.000009", "mariadb-bin.000001", None);
    copy(dir.path(), "binlog.000010", "vector.binlog", None);
    let (whole, _) = read_parts(dir.path(), None, usize::MAX);
    let (parts, sizes) = read_parts(dir.path(), None, 1);
    // Parts of one event each — or of one rows event's rows (two here), the unit a part is cut
    // at: the same events, and positions inside the transactions.
    assert_eq!(changes(&parts.events), changes(&whole.events));
    assert!(sizes.iter().all(|n| *n <= 2), "{sizes:?}");
    let inside = parts.positions.iter().filter(|p| p.part.is_some()).count();
    assert!(inside >= 3, "no transaction was cut into parts: {inside}");
    // Resume from every position handed out, inside a transaction or at its end: exactly the
    // events after it, never one again, and the same positions from there on.
    for (i, p) in parts.positions.iter().enumerate() {
        let handed: usize = sizes[..=i].iter().sum();
        let (rest, _) = read_parts(dir.path(), Some(p), 1);
        assert_eq!(
            changes(&rest.events),
            changes(&parts.events[handed..]),
            "after {p:?}"
        );
        assert_eq!(rest.positions, parts.positions[i + 1..], "after {p:?}");
        // A reader that takes whole transactions resumes there too.
        let (rest_whole, _) = read_parts(dir.path(), Some(p), usize::MAX);
        assert_eq!(
            changes(&rest_whole.events),
            changes(&parts.events[handed..])
        );
    }
}

/// The error reading `source` from `from` in parts of one event stops with.
fn first_error(source: &Path, from: &Position) -> String {
    let files = list(source).unwrap();
    let captured = tables(&["dtb.foo"]);
    let ddl = DdlSchemas::declared("", "").unwrap();
    let mut reader = BinlogFileReader::new(files, Some(from), &captured, ddl, "fixture", 1)
        .unwrap()
        .with_part_events(1);
    loop {
        match reader.next_transactions() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("read to the end from {from:?}"),
            Err(e) => return e.to_string(),
        }
    }
}

#[test]
fn a_part_position_that_does_not_match_the_binlog_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path(), "binlog.000010", "vector.binlog", None);
    let (parts, _) = read_parts(dir.path(), None, 1);
    let p = parts
        .positions
        .iter()
        .find(|p| p.part.is_some())
        .expect("a part")
        .clone();
    // The state names another last event than the binlog has at that count.
    let mut wrong_row = p.clone();
    if let Some(part) = wrong_row.part.as_mut() {
        part.row += 7;
    }
    let error = first_error(dir.path(), &wrong_row);
    assert!(
        error.contains("resuming inside a transaction handed out in parts"),
        "{error}"
    );
    // More events handed out than the transaction has.
    let mut too_many = p.clone();
    if let Some(part) = too_many.part.as_mut() {
        part.events += 1_000;
    }
    let error = first_error(dir.path(), &too_many);
    assert!(error.contains("the transaction ended after"), "{error}");
}
