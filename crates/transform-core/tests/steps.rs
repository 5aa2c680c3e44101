//! Every step on good and bad input, and every kind of spec mistake caught at build time with
//! the step, field and problem named.

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use common::*;
use strata_core::{BuildContext, CoreError, Pipeline, PipelineSpec};

fn run(yaml: &str, lines: &[&str]) -> (Collected, Pipeline) {
    let mut p = build_yaml(yaml).unwrap_or_else(|e| panic!("builds: {e}"));
    let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let c = run_chunks(&mut p, &lines, &[]);
    (c, p)
}

fn spec_error(yaml: &str) -> String {
    let e = build_yaml(yaml).expect_err("spec must be rejected");
    assert!(e.is_config_error(), "{e}");
    e.to_string()
}

const HEAD: &str = "name: t\nsteps:\n  - type: parse_json\n    schema: {a: int64, b: string}\n";

#[test]
fn parse_json_accepts_numbers_as_strings_and_ignores_extra_fields() {
    let (c, _) = run(
        &format!("{HEAD}output: {{schema: {{a: int64, b: string}}}}\n"),
        &[r#"{"a":"7","b":3,"zzz":[1]}"#, r#"{"b":"x"}"#],
    );
    assert_eq!(c.num_rows(), 2);
    let a = c.rows[0].column(0).as_primitive::<Int64Type>();
    assert_eq!(a.value(0), 7);
    assert!(a.is_null(1));
    assert_eq!(c.rows[0].column(1).as_string::<i32>().value(0), "3");
}

#[test]
fn parse_json_quarantines_bad_values_alone() {
    let (c, _) = run(
        &format!("{HEAD}output: {{schema: {{a: int64, b: string}}}}\n"),
        &[
            r#"{"a":1}"#,
            r#"{"a":"x"}"#,
            "{",
            r#"{"a":{"n":1}}"#,
            r#"{"a":2}"#,
        ],
    );
    assert_eq!(c.num_rows(), 2);
    let q = c.quarantine_text();
    assert!(q.contains("field `a`: \"x\" is not a valid int64"), "{q}");
    assert!(q.contains("not valid JSON"), "{q}");
    assert!(q.contains("does not fit the declared schema"), "{q}");
}

#[test]
fn select_and_rename() {
    let yaml = format!(
        "{HEAD}  - type: rename\n    columns: {{a: id}}\n  - type: select\n    columns: [b, id]\noutput: {{schema: {{b: string, id: int64}}}}\n"
    );
    let (c, p) = run(&yaml, &[r#"{"a":1,"b":"x"}"#]);
    let names: Vec<String> = p
        .output_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names[..2], ["b".to_string(), "id".to_string()]);
    assert_eq!(c.num_rows(), 1);
    let e = spec_error(&format!(
        "{HEAD}  - type: select\n    columns: [a, nope]\noutput: {{schema: {{a: int64}}}}\n"
    ));
    assert!(
        e.contains("steps[1] (select)")
            && e.contains("columns[1]")
            && e.contains("unknown column `nope`"),
        "{e}"
    );
    let e = spec_error(&format!(
        "{HEAD}  - type: rename\n    columns: {{a: b}}\noutput: {{schema: {{b: string}}}}\n"
    ));
    assert!(e.contains("two columns named `b`"), "{e}");
}

#[test]
fn cast_quarantines_what_does_not_convert() {
    let yaml = format!(
        "{HEAD}  - type: cast\n    columns: {{b: float64}}\noutput: {{schema: {{a: int64, b: float64}}}}\n"
    );
    let (c, _) = run(
        &yaml,
        &[r#"{"a":1,"b":"1.5"}"#, r#"{"a":2,"b":"abc"}"#, r#"{"a":3}"#],
    );
    assert_eq!(c.num_rows(), 2);
    assert_eq!(
        c.rows[0].column(1).as_primitive::<Float64Type>().value(0),
        1.5
    );
    let q = c.quarantine_text();
    assert!(
        q.contains("column `b`: value \"abc\" cannot be cast to float64"),
        "{q}"
    );
    let e = spec_error(&format!(
        "{HEAD}  - type: cast\n    columns: {{b: flaot}}\noutput: {{schema: {{a: int64, b: string}}}}\n"
    ));
    assert!(
        e.contains("steps[1] (cast)")
            && e.contains("columns.b")
            && e.contains("unknown type `flaot`"),
        "{e}"
    );
}

#[test]
fn flatten_applies_parent_nulls() {
    let yaml = "name: t\nsteps:\n  - type: parse_json\n    schema: {loc: \"struct<lat double, site string>\"}\n  - type: flatten\n    column: loc\noutput: {schema: {loc_lat: float64, loc_site: string}}\n";
    let (c, _) = run(
        yaml,
        &[
            r#"{"loc":{"lat":1.5,"site":"A"}}"#,
            r#"{"loc":null}"#,
            r#"{}"#,
        ],
    );
    let lat = c.rows[0].column(0).as_primitive::<Float64Type>();
    assert_eq!(lat.value(0), 1.5);
    assert!(lat.is_null(1) && lat.is_null(2));
    let e = spec_error(&format!(
        "{HEAD}  - type: flatten\n    column: a\noutput: {{schema: {{a: int64}}}}\n"
    ));
    assert!(e.contains("`a` is not a struct"), "{e}");
}

#[test]
fn filter_drops_and_counts() {
    let yaml = format!(
        "{HEAD}  - type: filter\n    where: a > 1\noutput: {{schema: {{a: int64, b: string}}}}\n"
    );
    let (c, p) = run(&yaml, &[r#"{"a":1}"#, r#"{"a":2}"#, r#"{}"#]);
    assert_eq!(c.num_rows(), 1);
    assert_eq!(p.metrics().dropped, 2, "false and NULL are dropped");
    assert_eq!(c.num_quarantined(), 0);
    let e = spec_error(&format!(
        "{HEAD}  - type: filter\n    where: a +\noutput: {{schema: {{a: int64}}}}\n"
    ));
    assert!(
        e.contains("steps[1] (filter)") && e.contains("field `where`"),
        "{e}"
    );
    let e = spec_error(&format!(
        "{HEAD}  - type: filter\n    where: a + 1\noutput: {{schema: {{a: int64}}}}\n"
    ));
    assert!(e.contains("not a boolean"), "{e}");
    let e = spec_error(&format!(
        "{HEAD}  - type: filter\n    where: zz > 1\noutput: {{schema: {{a: int64}}}}\n"
    ));
    assert!(e.contains("zz"), "{e}");
}

#[test]
fn derive_adds_replaces_and_chains() {
    let yaml = format!(
        "{HEAD}  - type: derive\n    columns:\n      c: a * 2\n      a: c + 1\n      u: upper(b)\noutput: {{schema: {{a: int64, b: string, c: int64, u: string}}}}\n"
    );
    let (c, _) = run(&yaml, &[r#"{"a":5,"b":"x"}"#]);
    let b = &c.rows[0];
    assert_eq!(
        b.column_by_name("c")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        10
    );
    assert_eq!(
        b.column_by_name("a")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        11
    );
    assert_eq!(
        b.column_by_name("u").unwrap().as_string::<i32>().value(0),
        "X"
    );
    let e = spec_error(&format!(
        "{HEAD}  - type: derive\n    columns: {{_x: a}}\noutput: {{schema: {{a: int64}}}}\n"
    ));
    assert!(e.contains("reserved"), "{e}");
}

#[test]
fn expect_actions() {
    let rules = "  - type: expect\n    rules:\n      - {name: pos, check: a > 0, action: quarantine}\n      - {name: small, check: a < 100, action: drop}\n      - {name: has_b, check: b IS NOT NULL, action: warn}\n";
    let yaml = format!("{HEAD}{rules}output: {{schema: {{a: int64, b: string}}}}\n");
    let (c, p) = run(
        &yaml,
        &[
            r#"{"a":1,"b":"x"}"#,
            r#"{"a":-1}"#,
            r#"{"a":500,"b":"y"}"#,
            r#"{"a":5}"#,
        ],
    );
    assert_eq!(c.num_rows(), 2);
    assert_eq!(c.num_quarantined(), 1);
    assert!(
        c.quarantine_text()
            .contains("expectation `pos` failed: a > 0")
    );
    let m = &p.metrics().steps[1];
    assert_eq!(m.dropped, 1);
    let counts: Vec<(String, u64, u64)> = m
        .rules
        .iter()
        .map(|r| (r.rule.clone(), r.passed, r.failed))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("pos".into(), 3, 1),
            ("small".into(), 3, 1),
            ("has_b".into(), 2, 2)
        ]
    );

    let fail = format!(
        "{HEAD}  - type: expect\n    rules:\n      - {{name: pos, check: a > 0, action: fail}}\noutput: {{schema: {{a: int64, b: string}}}}\n"
    );
    let mut p = build_yaml(&fail).unwrap();
    let err = p
        .process(&input(
            &[r#"{"a":1}"#.to_string(), r#"{"a":-3,"b":"q"}"#.to_string()],
            1,
        ))
        .unwrap_err();
    match err {
        CoreError::ExpectationFailed {
            rule,
            failed_rows,
            first_row,
            ..
        } => {
            assert_eq!((rule.as_str(), failed_rows), ("pos", 1));
            assert!(first_row.contains("-3"), "{first_row}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn mask_methods() {
    let yaml = "name: t\nsteps:\n  - type: parse_json\n    schema: {e: string, h: string, r: string, k: string}\n  - type: mask\n    columns:\n      e: {method: sha256}\n      h: {method: hmac_sha256, key_env: TEST_KEY}\n      r: {method: redact}\n      k: {method: keep_last, n: 4}\noutput: {schema: {e: string, h: string, r: string, k: string}}\n";
    let spec = PipelineSpec::from_yaml(yaml).unwrap();
    let ctx = BuildContext::with_secrets(|n| (n == "TEST_KEY").then(|| "s3cret".to_string()));
    let mut p = Pipeline::build(&spec, strata_core::lineage::file_input_schema(), &ctx).unwrap();
    let out = p
        .process(&input(
            &[
                r#"{"e":"a@b.c","h":"a@b.c","r":"x","k":"4111111111111111"}"#.to_string(),
                "{}".to_string(),
            ],
            1,
        ))
        .unwrap();
    let b = &out.rows[0];
    let col = |i: usize| b.column(i).as_string::<i32>();
    assert_eq!(col(0).value(0).len(), 64);
    assert_ne!(
        col(0).value(0),
        col(1).value(0),
        "keyed hash differs from plain hash"
    );
    assert_eq!(col(2).value(0), "***");
    assert_eq!(col(3).value(0), "************1111");
    assert!(col(0).is_null(1) && col(3).is_null(1), "nulls stay null");

    let no_key = Pipeline::build(
        &spec,
        strata_core::lineage::file_input_schema(),
        &BuildContext::with_secrets(|_| None),
    )
    .unwrap_err();
    assert!(no_key.to_string().contains("`TEST_KEY`"), "{no_key}");
    let e = spec_error(
        "name: t\nsteps:\n  - type: parse_json\n    schema: {a: int64}\n  - type: mask\n    columns: {a: {method: sha256}}\noutput: {schema: {a: string}}\n",
    );
    assert!(e.contains("only string columns"), "{e}");
}

#[test]
fn dedup_needs_bounds_and_keys() {
    let e = spec_error(&format!(
        "{HEAD}  - type: dedup\n    keys: [a]\noutput: {{schema: {{a: int64, b: string}}}}\n"
    ));
    assert!(e.contains("must be bounded"), "{e}");
    let e = spec_error(&format!(
        "{HEAD}  - type: dedup\n    keys: [a]\n    ttl: 1h\noutput: {{schema: {{a: int64, b: string}}}}\n"
    ));
    assert!(e.contains("needs an `event_time`"), "{e}");
    let e = spec_error(&format!(
        "{HEAD}  - type: dedup\n    keys: [x]\n    max_keys: 3\noutput: {{schema: {{a: int64, b: string}}}}\n"
    ));
    assert!(
        e.contains("keys[0]") && e.contains("unknown column `x`"),
        "{e}"
    );
}

#[test]
fn dedup_by_count_forgets_the_oldest() {
    let yaml = format!(
        "{HEAD}  - type: dedup\n    keys: [a]\n    max_keys: 2\noutput: {{schema: {{a: int64, b: string}}}}\n"
    );
    // 1 2 1 3 1: the second 1 is a duplicate; 3 evicts 1; the third 1 is new again.
    let (c, p) = run(
        &yaml,
        &[
            r#"{"a":1}"#,
            r#"{"a":2}"#,
            r#"{"a":1}"#,
            r#"{"a":3}"#,
            r#"{"a":1}"#,
        ],
    );
    let a: Vec<i64> = c.rows[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(a, vec![1, 2, 3, 1]);
    assert_eq!(p.metrics().duplicates(), 1);
}

#[test]
fn dedup_by_event_time_ttl() {
    let yaml = "name: t\nsteps:\n  - type: parse_json\n    schema: {k: string, ts: timestamp}\n  - type: dedup\n    keys: [k]\n    event_time: ts\n    ttl: 10s\noutput: {schema: {k: string, ts: timestamp}}\n";
    let (c, _) = run(
        yaml,
        &[
            r#"{"k":"x","ts":"2026-01-01T00:00:00Z"}"#,
            r#"{"k":"x","ts":"2026-01-01T00:00:05Z"}"#, // within 10 s: duplicate
            r#"{"k":"y","ts":"2026-01-01T00:00:30Z"}"#, // watermark moves to :30
            r#"{"k":"x","ts":"2026-01-01T00:00:06Z"}"#, // late, but x expired at :10 → kept
        ],
    );
    assert_eq!(c.num_rows(), 3);
}

#[test]
fn output_contract_is_enforced_at_build() {
    let e = spec_error(&format!(
        "{HEAD}output: {{schema: {{a: int32, b: string}}}}\n"
    ));
    assert!(
        e.contains("output")
            && e.contains("schema.a")
            && e.contains("declared int32 but the steps produce int64"),
        "{e}"
    );
    let e = spec_error(&format!("{HEAD}output: {{schema: {{a: int64}}}}\n"));
    assert!(e.contains("`b`, which is not declared"), "{e}");
    let e = spec_error(&format!(
        "{HEAD}output: {{schema: {{a: int64, b: string, c: string}}}}\n"
    ));
    assert!(
        e.contains("schema.c") && e.contains("no step produces it"),
        "{e}"
    );
    let e = spec_error(&format!(
        "{HEAD}output: {{schema: {{a: int64, b: string}}, partition_by: [\"day(b)\"]}}\n"
    ));
    assert!(
        e.contains("partition_by[0]") && e.contains("needs a timestamp"),
        "{e}"
    );
    let e = spec_error(
        "name: t\nsteps:\n  - type: select\n    columns: [a]\n  - type: parse_json\n    schema: {a: int64}\noutput: {schema: {a: int64}}\n",
    );
    assert!(e.contains("first step"), "{e}");
}

#[test]
fn declared_not_null_output_quarantines_nulls() {
    let yaml = format!("{HEAD}output: {{schema: {{a: int64 not null, b: string}}}}\n");
    let (c, _) = run(&yaml, &[r#"{"a":1}"#, r#"{"b":"no a"}"#]);
    assert_eq!(c.num_rows(), 1);
    assert!(
        c.quarantine_text()
            .contains("output column `a` is declared not null"),
        "{}",
        c.quarantine_text()
    );
}

#[test]
fn typed_input_without_raw_quarantines_rows_as_json() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount", DataType::Utf8, true),
        Field::new("_source", DataType::Utf8, false),
    ]));
    let spec = PipelineSpec::builder("typed")
        .cast([("amount", "decimal(10,2)")])
        .output([("id", "int64"), ("amount", "decimal(10,2)")])
        .build();
    let mut p = Pipeline::build(&spec, schema.clone(), &BuildContext::default()).unwrap();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["1530.90", "lots"])),
            Arc::new(StringArray::from(vec!["mysql.shop.orders"; 2])),
        ],
    )
    .unwrap();
    let out = p.process(&batch).unwrap();
    assert_eq!(out.num_rows(), 1);
    let raw = out.quarantined.column(0).as_binary::<i32>().value(0);
    assert_eq!(
        std::str::from_utf8(raw).unwrap(),
        r#"{"id":2,"amount":"lots"}"#
    );
    assert_eq!(
        out.rows[0].column(2).as_string::<i32>().value(0),
        "mysql.shop.orders",
        "lineage kept"
    );
}

#[test]
fn input_schema_mismatch_is_a_clear_error() {
    let mut p = build_yaml(&format!(
        "{HEAD}output: {{schema: {{a: int64, b: string}}}}\n"
    ))
    .unwrap();
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let e = p.process(&other).unwrap_err();
    assert!(matches!(e, CoreError::InputSchema { .. }), "{e}");
}

#[test]
fn checkpoint_of_another_pipeline_is_refused() {
    let (_, a) = run(
        &format!(
            "{HEAD}  - type: dedup\n    keys: [a]\n    max_keys: 5\noutput: {{schema: {{a: int64, b: string}}}}\n"
        ),
        &[r#"{"a":1}"#],
    );
    let mut b = build_yaml(&format!("{HEAD}  - type: dedup\n    keys: [a, b]\n    max_keys: 5\noutput: {{schema: {{a: int64, b: string}}}}\n")).unwrap();
    let e = b.restore(&a.checkpoint().unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("step `dedup`") && e.to_string().contains("changed since"),
        "{e}"
    );
    assert!(b.restore(b"garbage").is_err());
    // The rest of the pipeline may evolve: the dedup state carries over.
    let mut c = build_yaml(&format!("{HEAD}  - type: dedup\n    keys: [a]\n    max_keys: 5\n  - type: derive\n    columns: {{c: \"b || 'x'\"}}\noutput: {{schema: {{a: int64, b: string, c: string}}}}\n")).unwrap();
    c.restore(&a.checkpoint().unwrap()).unwrap();
    let lines = vec![r#"{"a":1}"#.to_string(), r#"{"a":2}"#.to_string()];
    let out = run_chunks(&mut c, &lines, &[]);
    let kept: usize = out.rows.iter().map(|b| b.num_rows()).sum();
    assert_eq!(kept, 1, "a=1 was seen before the pipeline changed");
}

#[test]
fn functions_that_only_exist_simplified_work() {
    let yaml = format!(
        "{HEAD}  - type: derive\n    columns:\n      c: coalesce(b, 'none')\n      d: nvl(a, 0)\noutput: {{schema: {{a: int64, b: string, c: string, d: int64}}}}\n"
    );
    let (c, _) = run(&yaml, &[r#"{"a":1,"b":"x"}"#, r#"{}"#]);
    let b = &c.rows[0];
    assert_eq!(
        b.column_by_name("c").unwrap().as_string::<i32>().value(1),
        "none"
    );
    assert_eq!(
        b.column_by_name("d")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(1),
        0
    );
}

#[test]
fn output_also_tables_are_validated_with_their_place_named() {
    let keyed = "output:\n  kind: snapshot\n  key: [a]\n  sequence: [a]\n  event_time: ts\n  schema: {a: int64, b: string, ts: timestamp}\n";
    let head =
        "name: t\nsteps:\n  - type: parse_json\n    schema: {a: int64, b: string, ts: timestamp}\n";
    let with_also = |also: &str| format!("{head}{keyed}  also:\n{also}");
    assert!(build_yaml(&with_also("    - { name: t_history, kind: historical }\n")).is_ok());
    let e = spec_error(&with_also("    - { name: t_states, kind: change_state }\n"));
    assert!(
        e.contains("also[0] (t_states)") && e.contains("state"),
        "{e}"
    );
    let e = spec_error(&with_also(
        "    - { name: t_quarantine, kind: historical }\n",
    ));
    assert!(
        e.contains("also[0]") && e.contains("pipeline's own tables"),
        "{e}"
    );
    let e = spec_error(&with_also(
        "    - { name: h, kind: historical }\n    - { name: h, kind: snapshot }\n",
    ));
    assert!(e.contains("also[1]") && e.contains("`h` twice"), "{e}");
    let e = spec_error(&with_also(
        "    - { name: h, kind: historical, partition_by: [\"hour(nope)\"] }\n",
    ));
    assert!(e.contains("also[0].partition_by[0]"), "{e}");
}
