//! PostgreSQL full load against the real server of `scripts/services.sh up`
//! (`STRATA_TEST_PG_URL`): every value of every row equals the source (compared as canonical text
//! computed in SQL on one side and from the Arrow batches on the other), writes committed during
//! the load are not seen, a killed reader's chunk is retried in the same snapshot with identical
//! parts, incremental mode reads only newer rows, and bad input gives errors naming what to fix.
//! Without the server, the tests say so loudly and pass; with `CI` set they fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use strata_connectors::ConnectorError;
use strata_connectors::postgres::{
    BoxError, IncrementalConfig, LoadReport, LoadedPart, PgConnection, PgLoader, PgSourceConfig,
    PgTableConfig,
};
use tokio_postgres::{Client, NoTls};

fn pg_url(test: &str) -> Option<String> {
    match std::env::var("STRATA_TEST_PG_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but STRATA_TEST_PG_URL is not: run `scripts/services.sh up`");
            }
            eprintln!(
                "SKIPPED {test}: no PostgreSQL (run `scripts/services.sh up` and source its env file)"
            );
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{nanos}_{}", std::process::id())
}

async fn admin(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn config(url: &str, app: &str, tables: Vec<PgTableConfig>) -> PgSourceConfig {
    let mut connection = PgConnection::from_url(url);
    connection.application_name = Some(app.to_string());
    let mut c = PgSourceConfig::new(connection, tables);
    c.parallelism = 3;
    c.batch_rows = 1_000;
    c.part_rows = 4_000;
    c.retry_backoff_ms = 50;
    c
}

/// Collects parts by (table, chunk, part); a part seen twice must be identical.
type PartKey = (String, usize, u32);
type PartValue = (Vec<RecordBatch>, String, Vec<(String, String)>);

#[derive(Default, Clone)]
struct Collected {
    parts: Arc<Mutex<BTreeMap<PartKey, PartValue>>>,
    repeats: Arc<Mutex<usize>>,
}

impl Collected {
    fn add(&self, part: &LoadedPart) {
        let key = (part.table.qualified(), part.chunk, part.part);
        let mut parts = self.parts.lock().expect("lock");
        if let Some((old, stem, _)) = parts.get(&key) {
            assert_eq!(
                old, &part.batches,
                "a retried part must be identical: {stem}"
            );
            assert_eq!(stem, &part.object_stem());
            *self.repeats.lock().expect("lock") += 1;
        } else {
            parts.insert(
                key,
                (part.batches.clone(), part.object_stem(), part.metadata()),
            );
        }
    }

    fn batches(&self, table: &str) -> Vec<RecordBatch> {
        self.parts
            .lock()
            .expect("lock")
            .iter()
            .filter(|((t, _, _), _)| t == table)
            .flat_map(|(_, (b, _, _))| b.clone())
            .collect()
    }
}

async fn load(config: PgSourceConfig, collected: &Collected) -> Result<LoadReport, ConnectorError> {
    let loader = PgLoader::new(config)?;
    loader
        .run(
            |part| {
                collected.add(&part);
                async { Ok::<(), BoxError>(()) }
            },
            &|_| {},
        )
        .await
}

/// The canonical text of one Arrow value, matching the SQL side of [`sql_rows`].
fn cell(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".into();
    }
    match array.data_type() {
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float32 => array.as_primitive::<Float32Type>().value(row).to_string(),
        DataType::Float64 => array.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            let digits = v.unsigned_abs().to_string();
            let scale = *scale as usize;
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            let sign = if v < 0 { "-" } else { "" };
            if scale == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            }
        }
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::Binary => array
            .as_binary::<i32>()
            .value(row)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        DataType::Date32 => array.as_primitive::<Date32Type>().value(row).to_string(),
        DataType::Time64(TimeUnit::Microsecond) => array
            .as_primitive::<Time64MicrosecondType>()
            .value(row)
            .to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .to_string(),
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            let items: Vec<String> = (0..values.len())
                .map(|i| {
                    if values.is_null(i) {
                        "null".into()
                    } else if values.data_type() == &DataType::Utf8 {
                        serde_json::to_string(values.as_string::<i32>().value(i)).expect("json")
                    } else {
                        cell(&values, i)
                    }
                })
                .collect();
            format!("[{}]", items.join(","))
        }
        other => panic!("no canonical form for {other}"),
    }
}

fn arrow_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| cell(c, r))
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    rows
}

async fn sql_rows(client: &Client, exprs: &[&str], from: &str) -> Vec<String> {
    let select = exprs
        .iter()
        .map(|e| format!("coalesce(({e})::text, 'NULL')"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT concat_ws('|', {select}) FROM {from}");
    let mut rows: Vec<String> = client
        .query(&sql, &[])
        .await
        .expect("reference query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

const TYPED_EXPRS: &[&str] = &[
    "id",
    "i2",
    "i4",
    "f4",
    "f8",
    "amount",
    "big::numeric(38,10)",
    "CASE WHEN flag THEN 'true' WHEN NOT flag THEN 'false' END",
    "name",
    "code",
    "rpad(ch::text, 3)",
    "encode(data, 'hex')",
    "d - date '1970-01-01'",
    "(extract(epoch FROM t) * 1000000)::int8",
    "(extract(epoch FROM ts) * 1000000)::int8",
    "(extract(epoch FROM tstz) * 1000000)::int8",
    "u",
    "j",
    "jb",
    "array_to_json(tags)",
    "array_to_json(nums)",
    "array_to_json(amounts)",
    "iv",
    "mood",
];

async fn create_fixture(client: &Client, schema: &str) {
    client
        .batch_execute(&format!(
            r#"
CREATE SCHEMA {schema};
CREATE TYPE {schema}.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE {schema}.typed (
  id int8 PRIMARY KEY, i2 int2, i4 int4 NOT NULL, f4 float4, f8 float8, amount numeric(12,2),
  big numeric, flag bool, name text, code varchar(10), ch char(3), data bytea, d date, t time,
  ts timestamp, tstz timestamptz, u uuid, j json, jb jsonb, tags text[], nums int4[],
  amounts numeric(10,3)[], iv interval, mood {schema}.mood);
INSERT INTO {schema}.typed
SELECT g, (g % 20000 - 10000)::int2, g::int4, (g * 0.25)::float4, g * 0.5 - 1000,
  round((g * 1.37 - 5000)::numeric, 2), (g * 1.000001)::numeric, g % 2 = 0,
  'name ' || g || CASE WHEN g % 5 = 0 THEN ' ünïcödé "quoted", comma' ELSE '' END,
  'c' || (g % 1000), 'x' || (g % 10), decode(md5(g::text), 'hex'),
  date '2000-01-01' + (g - 10000), time '00:00' + g * interval '1.000001 second',
  timestamp '1999-12-31 23:00:00' + g * interval '1 minute 0.123456 second',
  timestamptz '2026-11-24 10:00:00+00' - g * interval '1 hour 0.000001 second',
  md5(g::text)::uuid, json_build_object('g', g, 's', 'x y'),
  jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'a')),
  ARRAY['a' || g, NULL, 'q"uote'], ARRAY[g::int4, g::int4 + 1, NULL],
  ARRAY[(g * 0.001)::numeric(10,3), -1.5], (g || ' seconds')::interval,
  (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::{schema}.mood
FROM generate_series(1, 20000) g;
UPDATE {schema}.typed SET i2 = NULL, f4 = NULL, f8 = NULL, amount = NULL, big = NULL,
  flag = NULL, name = NULL, code = NULL, ch = NULL, data = NULL, d = NULL, t = NULL, ts = NULL,
  tstz = NULL, u = NULL, j = NULL, jb = NULL, tags = NULL, nums = NULL, amounts = NULL, iv = NULL,
  mood = NULL
WHERE id % 7 = 0;
UPDATE {schema}.typed SET tags = '{{}}', nums = '{{}}' WHERE id % 11 = 0;
CREATE TABLE {schema}.nopk (a int4, b text, c timestamptz);
INSERT INTO {schema}.nopk
SELECT g, repeat('row ' || g, 1 + g % 3), timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, 30000) g;
INSERT INTO {schema}.nopk VALUES (NULL, NULL, NULL);
"#
        ))
        .await
        .expect("fixture");
}

async fn drop_schema(client: &Client, schema: &str) {
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_equals_the_source_value_for_value() {
    let Some(url) = pg_url("full_load_equals_the_source_value_for_value") else {
        return;
    };
    let client = admin(&url).await;
    let schema = unique("strata_fl");
    create_fixture(&client, &schema).await;

    let collected = Collected::default();
    let report = load(
        config(
            &url,
            &schema,
            vec![
                PgTableConfig::new(&schema, "typed"),
                PgTableConfig::new(&schema, "nopk"),
            ],
        ),
        &collected,
    )
    .await
    .expect("load");

    let typed = format!("{schema}.typed");
    let nopk = format!("{schema}.nopk");
    assert_eq!(report.tables[0].rows, 20_000);
    assert_eq!(report.tables[1].rows, 30_001);
    assert_eq!(report.rows, 50_001);
    assert_eq!(report.tables[0].chunks, 3, "3 key ranges");
    assert_eq!(report.tables[1].chunks, 3, "3 page ranges");
    assert!(
        report.tables[0].parts > 3,
        "chunks above part_rows are split: {:?}",
        report.tables[0]
    );

    // Types from the catalog.
    let batches = collected.batches(&typed);
    let schema_ref = batches[0].schema();
    let ty = |name: &str| {
        schema_ref
            .field_with_name(name)
            .expect(name)
            .data_type()
            .clone()
    };
    assert_eq!(ty("amount"), DataType::Decimal128(12, 2));
    assert_eq!(ty("big"), DataType::Decimal128(38, 10));
    assert_eq!(
        ty("tstz"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(ty("ts"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert!(matches!(ty("tags"), DataType::List(f) if f.data_type() == &DataType::Utf8));
    assert!(
        matches!(ty("amounts"), DataType::List(f) if f.data_type() == &DataType::Decimal128(10, 3))
    );
    assert_eq!(ty("u"), DataType::Utf8);
    assert_eq!(ty("iv"), DataType::Utf8, "interval is read through ::text");
    assert_eq!(ty("mood"), DataType::Utf8, "enums are read through ::text");
    assert!(!schema_ref.field_with_name("i4").expect("i4").is_nullable());
    assert!(schema_ref.field_with_name("i2").expect("i2").is_nullable());

    // Every value of every row.
    let expected = sql_rows(&client, TYPED_EXPRS, &typed).await;
    let got = arrow_rows(&batches);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "first differing row");
    }
    let expected = sql_rows(
        &client,
        &["a", "b", "(extract(epoch FROM c) * 1000000)::int8"],
        &nopk,
    )
    .await;
    assert_eq!(arrow_rows(&collected.batches(&nopk)), expected);

    // Parts carry the snapshot time and name their chunk range.
    {
        let parts = collected.parts.lock().expect("lock");
        let (_, stem, metadata) = parts
            .get(&(typed.clone(), 0, 0))
            .expect("first part of typed");
        assert!(
            stem.starts_with(&format!("full-{}-c00000-k1_", report.snapshot.stamp)),
            "{stem}"
        );
        assert!(
            metadata
                .iter()
                .any(|(k, v)| k == "strata.snapshot_time" && v == &report.snapshot.time),
            "{metadata:?}"
        );
        assert!(
            parts.keys().any(|(t, _, _)| t == &nopk)
                && parts.values().any(|(_, stem, _)| stem.contains("-pg0_")),
            "the table without a key is chunked by pages"
        );
    }
    drop_schema(&client, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_committed_during_the_load_are_not_seen_and_a_killed_reader_is_retried() {
    let Some(url) = pg_url("writes_committed_during_the_load_are_not_seen") else {
        return;
    };
    let client = Arc::new(admin(&url).await);
    let schema = unique("strata_snap");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.accounts (id int8 PRIMARY KEY, balance numeric(12,2) NOT NULL, note text);
             INSERT INTO {schema}.accounts SELECT g, g * 10, 'original ' || repeat(md5(g::text), 64) FROM generate_series(1, 60000) g;"
        ))
        .await
        .expect("fixture");
    let table = format!("{schema}.accounts");
    let before = sql_rows(&client, &["id", "balance", "note"], &table).await;

    let mut cfg = config(&url, &schema, vec![PgTableConfig::new(&schema, "accounts")]);
    cfg.tables[0].chunks = Some(6);
    cfg.part_rows = 2_000;
    let collected = Collected::default();
    let parts_seen = Arc::new(Mutex::new(0usize));
    let loader = PgLoader::new(cfg).expect("loader");
    let report = loader
        .run(
            |part| {
                collected.add(&part);
                let client = client.clone();
                let schema = schema.clone();
                let parts_seen = parts_seen.clone();
                async move {
                    let first = {
                        let mut n = parts_seen.lock().expect("lock");
                        *n += 1;
                        *n == 1
                    };
                    if first {
                        // Committed while the load runs: must not be seen.
                        client
                            .batch_execute(&format!(
                                "UPDATE {schema}.accounts SET balance = -1, note = 'changed';
                                 DELETE FROM {schema}.accounts WHERE id % 10 = 0;
                                 INSERT INTO {schema}.accounts SELECT g, 0, 'new' FROM generate_series(60001, 61000) g;"
                            ))
                            .await?;
                        // And every reader loses its connection: chunks are read again.
                        let killed: i64 = client
                            .query_one(
                                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                 WHERE application_name LIKE $1) t",
                                &[&format!("{schema}-reader-%")],
                            )
                            .await?
                            .get(0);
                        assert!(killed > 0, "readers were running");
                    }
                    Ok::<(), BoxError>(())
                }
            },
            &|_| {},
        )
        .await
        .expect("load survives killed readers");
    assert!(report.retries > 0, "chunks were retried: {report:?}");
    assert!(
        *collected.repeats.lock().expect("lock") > 0,
        "parts of a retried chunk were emitted again, identical"
    );
    assert_eq!(report.tables[0].rows, 60_000, "{report:?}");
    let got = arrow_rows(&collected.batches(&table));
    assert_eq!(got.len(), before.len());
    assert!(got == before, "the load shows the data as of its snapshot");
    let now: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE note = 'changed'"),
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(now, 54_000, "the concurrent writes did commit");
    drop_schema(&client, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_mode_reads_only_newer_rows() {
    let Some(url) = pg_url("incremental_mode_reads_only_newer_rows") else {
        return;
    };
    let client = admin(&url).await;
    let schema = unique("strata_inc");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.orders (id int8 PRIMARY KEY, status text, updated_at timestamptz NOT NULL);
             INSERT INTO {schema}.orders
               SELECT g, 'new', timestamptz '2026-11-01 00:00:00+00' + g * interval '1.5 second'
               FROM generate_series(1, 5000) g;"
        ))
        .await
        .expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state/pg.json");
    let mk = || {
        let mut t = PgTableConfig::new(&schema, "orders");
        t.incremental = Some(IncrementalConfig {
            column: "updated_at".into(),
        });
        let mut c = config(&url, &schema, vec![t]);
        c.state_file = Some(state.clone());
        c
    };
    let ids = |c: &Collected| -> Vec<i64> {
        let mut ids: Vec<i64> = c
            .batches(&format!("{schema}.orders"))
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        ids.sort();
        ids
    };

    let first = Collected::default();
    let r1 = load(mk(), &first).await.expect("first run");
    assert_eq!(r1.rows, 5_000, "first run reads everything");
    assert_eq!(
        r1.tables[0].watermark,
        Some((None, "2026-11-01 02:05:00+00".to_string()))
    );
    let text = std::fs::read_to_string(&state).expect("state written");
    assert!(text.contains("2026-11-01 02:05:00+00"), "{text}");

    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.orders SELECT g, 'new', timestamptz '2026-11-02 00:00:00+00' + g * interval '1 microsecond'
               FROM generate_series(5001, 5010) g;
             UPDATE {schema}.orders SET status = 'paid', updated_at = timestamptz '2026-11-03 00:00:00.000001+00'
               WHERE id IN (3, 30, 300, 3000, 4999);
             DELETE FROM {schema}.orders WHERE id IN (1, 2);"
        ))
        .await
        .expect("changes");
    let second = Collected::default();
    let r2 = load(mk(), &second).await.expect("second run");
    let mut expected: Vec<i64> = (5001..=5010).chain([3, 30, 300, 3000, 4999]).collect();
    expected.sort();
    assert_eq!(
        ids(&second),
        expected,
        "only rows newer than the watermark; deletes unseen"
    );
    assert_eq!(r2.rows, 15);
    assert_eq!(
        r2.tables[0].watermark,
        Some((
            Some("2026-11-01 02:05:00+00".to_string()),
            "2026-11-03 00:00:00.000001+00".to_string()
        ))
    );
    let part_meta = second
        .parts
        .lock()
        .expect("lock")
        .values()
        .next()
        .expect("part")
        .2
        .clone();
    assert!(
        part_meta
            .iter()
            .any(|(k, v)| k == "strata.pg.mode" && v == "incremental")
    );

    let third = Collected::default();
    let r3 = load(mk(), &third).await.expect("third run");
    assert_eq!(r3.rows, 0, "nothing changed");
    assert!(r3.state_file.is_none(), "state untouched");
    assert!(
        std::fs::read_to_string(&state)
            .expect("state")
            .contains("2026-11-03 00:00:00.000001+00")
    );
    drop_schema(&client, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_errors_naming_what_to_fix() {
    let Some(url) = pg_url("bad_input_gives_errors_naming_what_to_fix") else {
        return;
    };
    let client = admin(&url).await;
    let schema = unique("strata_bad");
    let role = unique("strata_noaccess");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.secret (id int4 PRIMARY KEY, v text);
             INSERT INTO {schema}.secret VALUES (1, 'x');
             CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA {schema} TO {role};"
        ))
        .await
        .expect("fixture");
    let collected = Collected::default();
    let parsed: tokio_postgres::Config = url.parse().expect("url");
    let port = parsed.get_ports().first().copied().unwrap_or(5432);

    // Unreachable server.
    let mut c = config(
        "postgres://postgres@127.0.0.1:1/postgres",
        &schema,
        vec![PgTableConfig::new(&schema, "secret")],
    );
    c.connection.connect_timeout_secs = 2;
    let err = load(c, &collected).await.expect_err("unreachable");
    assert!(
        matches!(&err, ConnectorError::PgConnect { host, retryable: true, .. } if host == "127.0.0.1:1"),
        "{err}"
    );
    assert!(err.to_string().contains("reachable"), "{err}");

    // Unknown database.
    let url_db = format!(
        "postgres://postgres@127.0.0.1:{port}/no_such_db_{}",
        std::process::id()
    );
    let err = load(
        config(
            &url_db,
            &schema,
            vec![PgTableConfig::new(&schema, "secret")],
        ),
        &collected,
    )
    .await
    .expect_err("no database");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(
        matches!(
            err,
            ConnectorError::PgConnect {
                retryable: false,
                ..
            }
        ),
        "{err}"
    );

    // Unknown role (trust auth: the closest to wrong credentials this server can show).
    let url_role = format!(
        "postgres://nobody_{}@127.0.0.1:{port}/postgres",
        std::process::id()
    );
    let err = load(
        config(
            &url_role,
            &schema,
            vec![PgTableConfig::new(&schema, "secret")],
        ),
        &collected,
    )
    .await
    .expect_err("no role");
    assert!(
        matches!(&err, ConnectorError::PgConnect { user, .. } if user.starts_with("nobody_")),
        "{err}"
    );

    // Missing table, missing column.
    let err = load(
        config(&url, &schema, vec![PgTableConfig::new(&schema, "nope")]),
        &collected,
    )
    .await
    .expect_err("no table");
    assert!(
        matches!(&err, ConnectorError::PgTableNotFound { table, .. } if table == &format!("{schema}.nope")),
        "{err}"
    );
    let mut t = PgTableConfig::new(&schema, "secret");
    t.columns = Some(vec!["id".into(), "missing_col".into()]);
    let err = load(config(&url, &schema, vec![t]), &collected)
        .await
        .expect_err("no column");
    assert!(
        matches!(&err, ConnectorError::PgColumn { column, .. } if column == "missing_col"),
        "{err}"
    );

    // No SELECT privilege.
    let url_role = format!("postgres://{role}@127.0.0.1:{port}/postgres");
    let err = load(
        config(
            &url_role,
            &schema,
            vec![PgTableConfig::new(&schema, "secret")],
        ),
        &collected,
    )
    .await
    .expect_err("no privilege");
    assert!(
        matches!(&err, ConnectorError::PgPermission { table, privilege: "SELECT", user, .. }
            if table == &format!("{schema}.secret") && user == &role),
        "{err}"
    );
    assert!(err.to_string().contains("GRANT SELECT"), "{err}");

    // A value Arrow cannot hold names its column; text_columns is the way out.
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.odd (id int4 PRIMARY KEY, at timestamptz);
             INSERT INTO {schema}.odd VALUES (1, 'infinity');"
        ))
        .await
        .expect("odd");
    let err = load(
        config(&url, &schema, vec![PgTableConfig::new(&schema, "odd")]),
        &collected,
    )
    .await
    .expect_err("infinity");
    assert!(
        matches!(&err, ConnectorError::PgDecode { column, .. } if column == "at"),
        "{err}"
    );
    let mut t = PgTableConfig::new(&schema, "odd");
    t.text_columns = vec!["at".into()];
    let ok = load(config(&url, &schema, vec![t]), &collected)
        .await
        .expect("as text");
    assert_eq!(ok.rows, 1);
    let odd = collected.batches(&format!("{schema}.odd"));
    assert_eq!(odd[0].column(1).as_string::<i32>().value(0), "infinity");

    // An unconstrained numeric with more than 10 fractional digits does not fit the default
    // Decimal128(38, 10): an error, never a rounded value; the `text` policy reads it exactly.
    client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.precise (id int4 PRIMARY KEY, n numeric);
             INSERT INTO {schema}.precise VALUES (1, 2.5), (2, 1.12345678901);"
        ))
        .await
        .expect("precise");
    let err = load(
        config(&url, &schema, vec![PgTableConfig::new(&schema, "precise")]),
        &collected,
    )
    .await
    .expect_err("11 fractional digits");
    assert!(
        matches!(&err, ConnectorError::PgDecode { column, row: 1, .. } if column == "n"),
        "{err}"
    );
    let mut t = PgTableConfig::new(&schema, "precise");
    t.numeric_unconstrained = strata_connectors::postgres::UnconstrainedNumeric::Text;
    let exact = Collected::default();
    load(config(&url, &schema, vec![t]), &exact)
        .await
        .expect("as text");
    let mut values: Vec<(i32, String)> = exact
        .batches(&format!("{schema}.precise"))
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .map(|r| {
                    (
                        b.column(0).as_primitive::<Int32Type>().value(r),
                        b.column(1).as_string::<i32>().value(r).to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![(1, "2.5".to_string()), (2, "1.12345678901".to_string())]
    );

    drop_schema(&client, &schema).await;
    let _ = client
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
        .await;
}

/// A watermark is text read back from the source's rows, and it is spliced into the next
/// load's `COPY (SELECT …)` as a literal. Whatever the server's `standard_conforming_strings`,
/// the literal must read back as exactly that text: with it off, a plain `'…\''` ends early
/// and the rest of the value runs as SQL.
#[tokio::test]
async fn a_watermark_literal_reads_back_exactly_whatever_the_string_setting() {
    let Some(url) = pg_url("a_watermark_literal_reads_back_exactly_whatever_the_string_setting")
    else {
        return;
    };
    let client = admin(&url).await;
    let hostile = [
        r"plain",
        r"it's",
        r"back\slash",
        r"x\' OR 1=1 --",
        r"\\'; SELECT pg_sleep(0); --",
        r"trailing\",
    ];
    for setting in ["on", "off"] {
        client
            .batch_execute(&format!("SET standard_conforming_strings = {setting}"))
            .await
            .expect("set");
        for text in hostile {
            let literal = strata_connectors::postgres::types::quote_literal(text);
            let sql = format!("SELECT {literal}::text, 'end'::text");
            let row = client
                .query_one(sql.as_str(), &[])
                .await
                .unwrap_or_else(|e| panic!("{setting}: {sql} failed: {e}"));
            let (got, end): (String, String) = (row.get(0), row.get(1));
            assert_eq!(
                (got.as_str(), end.as_str()),
                (text, "end"),
                "{setting}: {sql}"
            );
        }
    }
}
