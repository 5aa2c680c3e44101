//! The keyed merge: unit cases, and the properties its drivers rely on.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use proptest::prelude::*;

use super::*;
use crate::spec::{DeleteMode, FullLoadMode, OutputSpec, TableKind};

fn base() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
        Field::new("op", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("ts", DataType::Int64, false),
    ]))
}

fn table(kind: TableKind, deletes: DeleteMode) -> KeyedTable {
    let output = OutputSpec {
        kind,
        key: vec!["id".into()],
        sequence: vec!["seq".into()],
        op: Some("op".into()),
        deletes,
        event_time: Some("ts".into()),
        ..OutputSpec::default()
    };
    KeyedTable::from_spec(&output, base()).unwrap().unwrap()
}

/// (key, value, op, sequence, time)
type Event = (i64, String, &'static str, i64, i64);

fn events(rows: &[Event]) -> RecordBatch {
    RecordBatch::try_new(
        base(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.0))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|e| e.1.clone()),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|e| e.2))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.3))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.4))),
        ],
    )
    .unwrap()
}

/// The table's rows as merge input again (validity columns dropped).
fn as_base(t: &KeyedTable, rows: &RecordBatch) -> RecordBatch {
    let n = t.base_schema().fields().len();
    RecordBatch::try_new(t.base_schema().clone(), rows.columns()[..n].to_vec()).unwrap()
}

fn apply(t: &KeyedTable, current: Option<&RecordBatch>, chunk: &[Event]) -> RecordBatch {
    let new = events(chunk);
    let input = match current {
        Some(c) => concat_batches(t.base_schema(), &[as_base(t, c), new]).unwrap(),
        None => new,
    };
    t.merge(&input).unwrap()
}

fn ints(b: &RecordBatch, c: &str) -> Vec<Option<i64>> {
    b.column_by_name(c)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn strs(b: &RecordBatch, c: &str) -> Vec<String> {
    b.column_by_name(c)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn e(id: i64, v: &str, op: &'static str, seq: i64, ts: i64) -> Event {
    (id, v.to_string(), op, seq, ts)
}

#[test]
fn snapshot_keeps_the_highest_sequence_and_drops_deleted_keys() {
    let t = table(TableKind::Snapshot, DeleteMode::Hard);
    let out = apply(
        &t,
        None,
        &[
            e(2, "b2", "u", 5, 1),
            e(1, "a1", "c", 1, 1),
            e(2, "b1", "c", 2, 1),
            e(3, "c1", "c", 3, 1),
            e(3, "", "d", 4, 2),
        ],
    );
    assert_eq!(ints(&out, "id"), vec![Some(1), Some(2)]);
    assert_eq!(strs(&out, "v"), vec!["a1", "b2"]);
    // A late, older update of key 2 changes nothing; a replay of its delete neither.
    let again = apply(
        &t,
        Some(&out),
        &[e(2, "old", "u", 3, 1), e(1, "a1", "c", 1, 1)],
    );
    assert_eq!(again, out);
}

#[test]
fn soft_deletes_keep_the_key_with_its_delete() {
    let t = table(TableKind::Snapshot, DeleteMode::Soft);
    let out = apply(&t, None, &[e(1, "a", "c", 1, 1), e(1, "", "d", 2, 2)]);
    assert_eq!(strs(&out, "op"), vec!["d"]);
    // The late insert (older than the delete) does not bring the key back.
    let late = apply(&t, Some(&out), &[e(1, "a0", "c", 0, 0)]);
    assert_eq!(strs(&late, "op"), vec!["d"]);
}

#[test]
fn history_is_half_open_and_a_late_event_lands_in_its_place() {
    let t = table(TableKind::Historical, DeleteMode::Hard);
    let first = apply(
        &t,
        None,
        &[e(1, "a", "c", 10, 100), e(1, "c", "u", 30, 300)],
    );
    let out = apply(
        &t,
        Some(&first),
        &[e(1, "b", "u", 20, 200), e(1, "", "d", 40, 400)],
    );
    assert_eq!(strs(&out, "v"), vec!["a", "b", "c", ""]);
    assert_eq!(
        ints(&out, VALID_FROM),
        vec![Some(100), Some(200), Some(300), Some(400)]
    );
    // Each version ends where the next starts; the delete is closed at once.
    assert_eq!(
        ints(&out, VALID_TO),
        vec![Some(200), Some(300), Some(400), Some(400)]
    );
    let current = out.column_by_name(IS_CURRENT).unwrap().as_boolean().clone();
    assert_eq!(current, BooleanArray::from(vec![false; 4]));
}

#[test]
fn the_current_version_is_open() {
    let t = table(TableKind::Historical, DeleteMode::Hard);
    let out = apply(&t, None, &[e(7, "x", "r", 1, 5), e(7, "y", "u", 2, 5)]);
    // Binlog times tie at second resolution: the sequence orders the versions.
    assert_eq!(strs(&out, "v"), vec!["x", "y"]);
    assert_eq!(ints(&out, VALID_TO), vec![Some(5), None]);
    let current = out.column_by_name(IS_CURRENT).unwrap().as_boolean();
    assert!(!current.value(0) && current.value(1));
}

#[test]
fn a_keyed_kind_is_validated_against_the_output() {
    let mut output = OutputSpec {
        kind: TableKind::Snapshot,
        sequence: vec!["seq".into()],
        ..OutputSpec::default()
    };
    let err = KeyedTable::from_spec(&output, base()).unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    output.key = vec!["nope".into()];
    let err = KeyedTable::from_spec(&output, base()).unwrap_err();
    assert!(
        err.to_string().contains("`nope` is not an output column"),
        "{err}"
    );
    output.key = vec!["id".into()];
    output.kind = TableKind::Historical;
    let err = KeyedTable::from_spec(&output, base()).unwrap_err();
    assert!(err.to_string().contains("event_time"), "{err}");
    output.op = Some("seq".into());
    output.event_time = Some("ts".into());
    let err = KeyedTable::from_spec(&output, base()).unwrap_err();
    assert!(err.to_string().contains("not a string"), "{err}");
    let append = OutputSpec {
        key: vec!["id".into()],
        ..OutputSpec::default()
    };
    assert!(KeyedTable::from_spec(&append, base()).is_err());
}

#[test]
fn a_replacing_full_load_deletes_the_keys_it_lacks_and_keeps_unchanged_rows() {
    let mut output = OutputSpec {
        kind: TableKind::Snapshot,
        key: vec!["id".into()],
        sequence: vec!["seq".into()],
        event_time: Some("ts".into()),
        full_load: FullLoadMode::Replace,
        ..OutputSpec::default()
    };
    let t = KeyedTable::from_spec(&output, base()).unwrap().unwrap();
    assert!(t.replaces_missing_keys());
    let first = apply(
        &t,
        None,
        &[
            e(1, "a", "r", 1, 1),
            e(2, "b", "r", 1, 1),
            e(3, "c", "r", 1, 1),
        ],
    );
    // The next load: key 1 changed, key 2 is gone at the source, key 3 unchanged, key 4 new.
    let load = events(&[
        e(1, "a2", "r", 2, 2),
        e(3, "c", "r", 1, 1),
        e(4, "d", "r", 1, 2),
    ]);
    let kept = t.rows_in_load(&as_base(&t, &first), &load).unwrap();
    assert_eq!(ints(&kept, "id"), vec![Some(1), Some(3)]);
    let next = t
        .merge(&concat_batches(t.base_schema(), &[kept, load]).unwrap())
        .unwrap();
    assert_eq!(ints(&next, "id"), vec![Some(1), Some(3), Some(4)]);
    assert_eq!(strs(&next, "v"), vec!["a2", "c", "d"]);
    // An empty load empties the table.
    let nothing = events(&[]);
    assert_eq!(
        t.rows_in_load(&as_base(&t, &next), &nothing)
            .unwrap()
            .num_rows(),
        0
    );
    // Only a snapshot with hard deletes can mirror a load.
    output.deletes = DeleteMode::Soft;
    output.op = Some("op".into());
    let err = KeyedTable::from_spec(&output, base()).unwrap_err();
    assert!(err.to_string().contains("full_load"), "{err}");
    output.deletes = DeleteMode::Hard;
    output.kind = TableKind::Historical;
    assert!(KeyedTable::from_spec(&output, base()).is_err());
    let append = OutputSpec {
        full_load: FullLoadMode::Replace,
        ..OutputSpec::default()
    };
    assert!(KeyedTable::from_spec(&append, base()).is_err());
}

/// Change events with distinct sequences (the source's order) over a few keys.
fn change_log() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..6, 0u8..3, 0u8..100), 1..40).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (id, op, v))| {
                let op = ["c", "u", "d"][op as usize];
                let seq = i as i64;
                (id, format!("v{v}"), op, seq, seq / 3)
            })
            .collect()
    })
}

/// The same events delivered in another order, some twice, in chunks (one merge each).
fn delivery(log: Vec<Event>) -> impl Strategy<Value = Vec<Vec<Event>>> {
    let n = log.len();
    (
        Just(log).prop_shuffle(),
        prop::collection::vec(0..n, 0..5),
        prop::collection::vec(1usize..8, 1..10),
    )
        .prop_map(|(mut shuffled, repeats, sizes)| {
            let extra: Vec<Event> = repeats.iter().map(|&i| shuffled[i].clone()).collect();
            shuffled.extend(extra);
            let mut chunks = Vec::new();
            let mut rest = shuffled.as_slice();
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at((*size).min(rest.len()));
                chunks.push(now.to_vec());
                rest = later;
            }
            chunks
        })
}

fn fold(t: &KeyedTable, chunks: &[Vec<Event>]) -> RecordBatch {
    let mut current: Option<RecordBatch> = None;
    for chunk in chunks {
        current = Some(apply(t, current.as_ref(), chunk));
    }
    current.unwrap_or_else(|| RecordBatch::new_empty(t.table_schema().clone()))
}

fn current_rows(history: &RecordBatch) -> Vec<(Option<i64>, String, Option<i64>)> {
    let current = history.column_by_name(IS_CURRENT).unwrap().as_boolean();
    let (ids, vs, seqs) = (
        ints(history, "id"),
        strs(history, "v"),
        ints(history, "seq"),
    );
    (0..history.num_rows())
        .filter(|&i| current.value(i))
        .map(|i| (ids[i], vs[i].clone(), seqs[i]))
        .collect()
}

fn live_rows(snapshot: &RecordBatch) -> Vec<(Option<i64>, String, Option<i64>)> {
    let (ids, vs, ops, seqs) = (
        ints(snapshot, "id"),
        strs(snapshot, "v"),
        strs(snapshot, "op"),
        ints(snapshot, "seq"),
    );
    (0..snapshot.num_rows())
        .filter(|&i| ops[i] != "d")
        .map(|i| (ids[i], vs[i].clone(), seqs[i]))
        .collect()
}

proptest! {
    #[test]
    fn any_arrival_order_and_duplication_gives_the_same_history(
        (log, chunks) in change_log().prop_flat_map(|log| (Just(log.clone()), delivery(log)))
    ) {
        let t = table(TableKind::Historical, DeleteMode::Hard);
        let once = apply(&t, None, &log);
        let delivered = fold(&t, &chunks);
        prop_assert_eq!(&delivered, &once);
        prop_assert_eq!(once.num_rows(), log.len(), "one version per change event");
        // Half-open: within a key, each version ends exactly where the next begins.
        let (ids, from, to) = (ints(&once, "id"), ints(&once, VALID_FROM), ints(&once, VALID_TO));
        for i in 0..once.num_rows() {
            if i + 1 < once.num_rows() && ids[i] == ids[i + 1] {
                prop_assert_eq!(to[i], from[i + 1]);
            }
        }
    }

    #[test]
    fn the_snapshot_is_the_current_rows_of_the_history(
        (log, chunks) in change_log().prop_flat_map(|log| (Just(log.clone()), delivery(log)))
    ) {
        let history = fold(&table(TableKind::Historical, DeleteMode::Hard), &chunks);
        // Soft deletes remember a delete's sequence, so any arrival order converges.
        let soft = fold(&table(TableKind::Snapshot, DeleteMode::Soft), &chunks);
        prop_assert_eq!(live_rows(&soft), current_rows(&history));
        // Hard deletes, delivered in source order (as a binlog is), converge too.
        let in_order: Vec<Vec<Event>> = log.chunks(3).map(|c| c.to_vec()).collect();
        let hard = fold(&table(TableKind::Snapshot, DeleteMode::Hard), &in_order);
        prop_assert_eq!(live_rows(&hard), current_rows(&history));
        prop_assert_eq!(hard.num_rows(), live_rows(&hard).len());
    }
}

#[test]
fn null_keys_and_empty_input_do_not_panic() {
    let t = table(TableKind::Snapshot, DeleteMode::Hard);
    let empty = t.merge(&RecordBatch::new_empty(base())).unwrap();
    assert_eq!(empty.num_rows(), 0);
    let with_null = RecordBatch::try_new(
        base(),
        vec![
            Arc::new(Int64Array::from(vec![None, Some(1)])),
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(StringArray::from(vec!["c", "c"])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![1, 2])),
        ],
    )
    .unwrap();
    assert_eq!(t.merge(&with_null).unwrap().num_rows(), 2);
    assert!(with_null.column(0).is_null(0));
}

mod change_state {
    use super::*;
    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::TimeUnit;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("card", DataType::Int64, false),
            Field::new("phase", DataType::Utf8, true),
            Field::new("seq", DataType::Int64, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    fn table() -> KeyedTable {
        let output = OutputSpec {
            kind: TableKind::ChangeState,
            key: vec!["card".into()],
            sequence: vec!["seq".into()],
            state: Some("phase".into()),
            event_time: Some("at".into()),
            ..OutputSpec::default()
        };
        KeyedTable::from_spec(&output, schema()).unwrap().unwrap()
    }

    /// (card, phase, seq, at ms)
    fn moves(rows: &[(i64, &str, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.3),
                )),
            ],
        )
        .unwrap()
    }

    fn fold(t: &KeyedTable, chunks: &[Vec<(i64, &'static str, i64, i64)>]) -> RecordBatch {
        let mut current: Option<RecordBatch> = None;
        for chunk in chunks {
            let new = moves(chunk);
            let input = match &current {
                Some(c) => {
                    let n = t.base_schema().fields().len();
                    let old =
                        RecordBatch::try_new(t.base_schema().clone(), c.columns()[..n].to_vec())
                            .unwrap();
                    concat_batches(t.base_schema(), &[old, new]).unwrap()
                }
                None => new,
            };
            current = Some(t.merge(&input).unwrap());
        }
        current.unwrap()
    }

    #[test]
    fn each_change_records_where_it_came_from_and_how_long_it_stayed() {
        let t = table();
        // The middle move arrives last.
        let out = fold(
            &t,
            &[
                vec![(7, "Inbox", 1, 1_000), (7, "Done", 3, 9_000)],
                vec![(7, "Doing", 2, 4_000)],
            ],
        );
        assert_eq!(strs(&out, TO_STATE), vec!["Inbox", "Doing", "Done"]);
        let from = out.column_by_name(FROM_STATE).unwrap().as_string::<i32>();
        assert!(from.is_null(0));
        assert_eq!((from.value(1), from.value(2)), ("Inbox", "Doing"));
        assert_eq!(
            ints(&out, DURATION_MS),
            vec![Some(3_000), Some(5_000), None]
        );
        assert!(
            out.column_by_name(LEFT_AT).unwrap().is_null(2),
            "still in Done"
        );
    }

    fn card_moves() -> impl Strategy<Value = Vec<(i64, &'static str, i64, i64)>> {
        prop::collection::vec((0i64..4, 0usize..4, 0i64..5_000), 1..30).prop_map(|raw| {
            let mut at = 0;
            raw.into_iter()
                .enumerate()
                .map(|(i, (card, phase, gap))| {
                    at += gap;
                    (
                        card,
                        ["Inbox", "Doing", "Review", "Done"][phase],
                        i as i64,
                        at,
                    )
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn durations_add_up_to_each_cards_lifetime_in_any_arrival_order(
            (log, order) in card_moves().prop_flat_map(|log| {
                let n = log.len();
                (Just(log), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
        ) {
            let t = table();
            let shuffled: Vec<_> = order.iter().map(|&i| log[i]).collect();
            let chunks: Vec<Vec<_>> = shuffled.chunks(4).map(|c| c.to_vec()).collect();
            let out = fold(&t, &chunks);
            prop_assert_eq!(&out, &fold(&t, std::slice::from_ref(&log)));
            let cards = ints(&out, "card");
            let durations = ints(&out, DURATION_MS);
            for card in 0..4 {
                let times: Vec<i64> = log.iter().filter(|m| m.0 == card).map(|m| m.3).collect();
                let Some(first) = times.first() else { continue };
                let last = times.last().copied().unwrap_or(*first);
                let sum: i64 = (0..out.num_rows())
                    .filter(|&i| cards[i] == Some(card))
                    .filter_map(|i| durations[i])
                    .sum();
                prop_assert_eq!(sum, last - first, "card {}", card);
            }
        }
    }
}
