//! `strata cdc mysql` is exactly-once into Kafka across SIGKILL, against the real servers of
//! `scripts/services.sh` (private MariaDB with row binlog, tansu).
//!
//! A writer (the `mariadb` client fed through a pipe) runs multi-statement transactions —
//! inserts, single- and multi-row updates and deletes over two tables — while the real binary is
//! killed with SIGKILL at random moments and restarted. Some kills also roll the state file back
//! to an older copy: exactly the situation of a crash between the broker's acknowledgement and
//! the state save, widened to several batches so that the resume path is surely taken. Then the
//! writes stop, a last run catches up, and every output record is checked against the writer's
//! own log: each committed change exactly once, in order per key, a tombstone right after each
//! delete, and the final state equal to the database's.
//!
//! Outside CI, without the servers, the test says so loudly and passes; with `CI` set it fails.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value as Json, json};

/// Plain SIGKILLs, plus those that also roll the state file back.
const KILLS: usize = 6;

fn env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {var} is not: run `scripts/services.sh up`")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED cdc_mysql_kill: {var} is unset (run `scripts/services.sh up` and \
                 source \"$(scripts/services.sh env)\")"
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
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// xorshift64*: enough randomness for kill moments and operations, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// The `mariadb` command-line client for a `mysql://user[:password]@host:port` URL.
#[derive(Clone)]
struct Client {
    host: String,
    port: String,
    user: String,
    password: Option<String>,
}

impl Client {
    fn from_url(url: &str) -> Self {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let rest = rest.split('/').next().unwrap_or(rest);
        let (creds, addr) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = match creds.split_once(':') {
            Some((u, p)) => (u.to_string(), Some(p.to_string())),
            None => (creds.to_string(), None),
        };
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "3306"));
        Client {
            host: host.to_string(),
            port: port.to_string(),
            user,
            password,
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            &self.host,
            "-P",
            &self.port,
            "-u",
            &self.user,
            "-N",
            "-B",
        ]);
        if let Some(p) = &self.password {
            c.env("MYSQL_PWD", p);
        }
        c
    }

    /// Runs `sql` and returns the output (tab-separated rows).
    fn run(&self, sql: &str) -> String {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mariadb client (apt-get install mariadb-client)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write sql");
        let out = child.wait_with_output().expect("mariadb");
        assert!(
            out.status.success(),
            "{sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One expected change of a row, as the connector must report it.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    op: &'static str,
    before: Option<Json>,
    after: Option<Json>,
}

/// What the writer did, and what the tables hold because of it.
#[derive(Default)]
struct Model {
    rows: [BTreeMap<i64, Json>; 2],
    live: [Vec<i64>; 2],
    next_id: [i64; 2],
    /// Changes per (table index, id), in commit order.
    log: BTreeMap<(usize, i64), Vec<Change>>,
    changes: usize,
    deletes: [usize; 2],
    transactions: usize,
    counter: u64,
}

const TABLES: [&str; 2] = ["t1", "t2"];

impl Model {
    fn row(&mut self, t: usize, id: i64) -> Json {
        self.counter += 1;
        match t {
            0 => {
                json!({"id": id, "v": self.counter, "note": (!self.counter.is_multiple_of(3)).then(|| format!("n{}", self.counter))})
            }
            _ => json!({"id": id, "qty": self.counter % 1000}),
        }
    }

    fn values(row: &Json) -> String {
        let v = |k: &str| match &row[k] {
            Json::Null => "NULL".to_string(),
            Json::String(s) => format!("'{s}'"),
            other => other.to_string(),
        };
        match row.get("v") {
            Some(_) => format!("({}, {}, {})", v("id"), v("v"), v("note")),
            None => format!("({}, {})", v("id"), v("qty")),
        }
    }

    fn record(&mut self, t: usize, id: i64, change: Change) {
        self.changes += 1;
        if change.op == "d" {
            self.deletes[t] += 1;
        }
        self.log.entry((t, id)).or_default().push(change);
    }

    fn insert(&mut self, t: usize, n: usize, op: &'static str) -> String {
        let mut values = Vec::new();
        for _ in 0..n {
            self.next_id[t] += 1;
            let id = self.next_id[t];
            let row = self.row(t, id);
            values.push(Self::values(&row));
            self.rows[t].insert(id, row.clone());
            self.live[t].push(id);
            self.record(
                t,
                id,
                Change {
                    op,
                    before: None,
                    after: Some(row),
                },
            );
        }
        format!("INSERT INTO {} VALUES {};", TABLES[t], values.join(", "))
    }

    fn pick(&mut self, rng: &mut Rng, t: usize, n: usize) -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::new();
        for _ in 0..n {
            if self.live[t].is_empty() {
                break;
            }
            let i = rng.below(self.live[t].len() as u64) as usize;
            let id = self.live[t][i];
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids
    }

    fn update(&mut self, rng: &mut Rng, t: usize, n: usize) -> Option<String> {
        let ids = self.pick(rng, t, n);
        if ids.is_empty() {
            return None;
        }
        self.counter += 1;
        let c = self.counter;
        for id in &ids {
            let before = self.rows[t][id].clone();
            let mut after = before.clone();
            if t == 0 {
                after["v"] = json!(before["v"].as_u64().unwrap_or(0) + 1);
                after["note"] = json!(format!("u{c}"));
            } else {
                after["qty"] = json!(before["qty"].as_u64().unwrap_or(0) + 1);
            }
            self.rows[t].insert(*id, after.clone());
            self.record(
                t,
                *id,
                Change {
                    op: "u",
                    before: Some(before),
                    after: Some(after),
                },
            );
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        Some(match t {
            0 => format!(
                "UPDATE t1 SET v = v + 1, note = 'u{c}' WHERE id IN ({});",
                list.join(", ")
            ),
            _ => format!(
                "UPDATE t2 SET qty = qty + 1 WHERE id IN ({});",
                list.join(", ")
            ),
        })
    }

    fn delete(&mut self, rng: &mut Rng, t: usize, n: usize) -> Option<String> {
        let ids = self.pick(rng, t, n);
        if ids.is_empty() {
            return None;
        }
        for id in &ids {
            let before = self.rows[t].remove(id);
            self.live[t].retain(|x| x != id);
            self.record(
                t,
                *id,
                Change {
                    op: "d",
                    before,
                    after: None,
                },
            );
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        Some(format!(
            "DELETE FROM {} WHERE id IN ({});",
            TABLES[t],
            list.join(", ")
        ))
    }

    /// A transaction of 1–4 statements over both tables.
    fn transaction(&mut self, rng: &mut Rng) -> String {
        let mut sql = String::from("BEGIN;\n");
        for _ in 0..1 + rng.below(4) {
            let stmt = match rng.below(100) {
                0..=29 => Some(self.insert(0, 1 + rng.below(2) as usize, "c")),
                30..=44 => Some(self.insert(1, 1, "c")),
                45..=64 => self.update(rng, 0, 1),
                65..=74 => self.update(rng, 1, 3),
                75..=89 => self.delete(rng, 0, 1),
                _ => self.delete(rng, 1, 2),
            };
            if let Some(s) = stmt {
                sql.push_str(&s);
                sql.push('\n');
            }
        }
        sql.push_str("COMMIT;\n");
        self.transactions += 1;
        sql
    }
}

/// Runs transactions through one `mariadb` process until `stop`, then waits for all of them to
/// be committed (the client exits 0 only if every statement succeeded).
fn writer(client: Client, db: String, mut model: Model, seed: u64, stop: Arc<AtomicBool>) -> Model {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut child = client
        .command()
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mariadb client");
    let mut stdin = child.stdin.take().expect("stdin");
    while !stop.load(Ordering::SeqCst) {
        let sql = model.transaction(&mut rng);
        stdin.write_all(sql.as_bytes()).expect("writer pipe");
        std::thread::sleep(Duration::from_millis(4));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("writer");
    assert!(
        out.status.success(),
        "a writer transaction failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    model
}

/// Hang guard for waits whose length depends on the machine (never an assertion on speed).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Runs {
    dir: PathBuf,
    config: PathBuf,
    started: usize,
}

impl Runs {
    fn start(&mut self, extra: &[&str]) -> Child {
        let n = self.started;
        self.started += 1;
        let out = File::create(self.dir.join(format!("run{n}.out"))).expect("log");
        let err = File::create(self.dir.join(format!("run{n}.err"))).expect("log");
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["cdc", "mysql", "--config"])
            .arg(&self.config)
            .args(extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("strata")
    }

    fn stderr(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("run{n}.err"))).unwrap_or_default()
    }

    fn stdout(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("run{n}.out"))).unwrap_or_default()
    }

    /// SIGKILL (`Child::kill`), after checking that the run had not stopped by itself.
    fn kill(&self, child: &mut Child) {
        let n = self.started - 1;
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("run {n} stopped by itself ({status}):\n{}", self.stderr(n));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }
}

/// "resume: N events …" of a run's stderr.
fn resumed_events(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("resume: "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A record read back.
struct Rec {
    partition: i32,
    key: Option<String>,
    value: Option<Json>,
}

/// Every record of `topic` (assigned partitions, no group), read until at least `expected`
/// arrived and then nothing more for a while — the broker's reported partition end is not
/// trusted (see ../shared/SERVERS.md). More than `expected` records is a failure found later.
async fn read_topic(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Rec> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("check"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: Vec<(i32, i64, Rec)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let quiet = if out.len() >= expected {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(10)
        };
        match tokio::time::timeout(quiet, consumer.recv()).await {
            Err(_) if out.len() >= expected => break,
            Err(_) => assert!(
                Instant::now() < deadline,
                "{topic}: only {} of {expected} records arrived",
                out.len()
            ),
            Ok(m) => {
                let m = m.expect("message");
                out.push((
                    m.partition(),
                    m.offset(),
                    Rec {
                        partition: m.partition(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        value: m
                            .payload()
                            .map(|v| serde_json::from_slice(v).expect("JSON value")),
                    },
                ));
            }
        }
    }
    out.sort_by_key(|(p, o, _)| (*p, *o));
    out.into_iter().map(|(_, _, r)| r).collect()
}

/// Checks one topic against the writer's log; returns the events checked.
fn check_topic(t: usize, topic: &str, records: &[Rec], model: &Model) -> usize {
    let deletes = model.deletes[t];
    let mut ids: HashSet<(String, u64, u64)> = HashSet::new();
    let mut per_key: BTreeMap<i64, Vec<&Rec>> = BTreeMap::new();
    let mut partition_of: HashMap<i64, i32> = HashMap::new();
    for r in records {
        let key: Json = serde_json::from_str(r.key.as_deref().expect("every record has a key"))
            .expect("JSON key");
        let id = key["id"].as_i64().expect("key {id}");
        if let Some(v) = &r.value {
            let s = &v["source"];
            let event_id = (
                s["file"].as_str().expect("file").to_string(),
                s["pos"].as_u64().expect("pos"),
                s["row"].as_u64().expect("row"),
            );
            assert!(
                ids.insert(event_id.clone()),
                "{topic}: event {event_id:?} (key {id}) delivered twice"
            );
        }
        let p = *partition_of.entry(id).or_insert(r.partition);
        assert_eq!(p, r.partition, "{topic}: key {id} in two partitions");
        per_key.entry(id).or_default().push(r);
    }
    let mut events = 0;
    let mut tombstones = 0;
    let mut final_state: BTreeMap<i64, Json> = BTreeMap::new();
    for (id, recs) in &per_key {
        let mut got: Vec<Change> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            let Some(v) = &r.value else {
                tombstones += 1;
                let after_delete = i > 0
                    && recs[i - 1]
                        .value
                        .as_ref()
                        .is_some_and(|p| p["op"] == json!("d"));
                assert!(
                    after_delete,
                    "{topic}: key {id}: a tombstone that does not follow a delete"
                );
                continue;
            };
            let op = match v["op"].as_str().expect("op") {
                "r" => "r",
                "c" => "c",
                "u" => "u",
                "d" => "d",
                other => panic!("{topic}: unknown op {other}"),
            };
            if op == "d" {
                assert!(
                    recs.get(i + 1).is_some_and(|n| n.value.is_none()),
                    "{topic}: key {id}: the delete is not followed by its tombstone"
                );
            }
            let image = |k: &str| (!v[k].is_null()).then(|| v[k].clone());
            got.push(Change {
                op,
                before: image("before"),
                after: image("after"),
            });
            events += 1;
        }
        let want = model.log.get(&(t, *id)).cloned().unwrap_or_default();
        assert_eq!(
            got, want,
            "{topic}: key {id}: the changes in Kafka differ from the writer's log"
        );
        if let Some(last) = got.last().and_then(|c| c.after.clone()) {
            final_state.insert(*id, last);
        }
    }
    let expected_events: usize = model
        .log
        .iter()
        .filter(|((tt, _), _)| *tt == t)
        .map(|(_, v)| v.len())
        .sum();
    assert_eq!(events, expected_events, "{topic}: events");
    assert_eq!(tombstones, deletes, "{topic}: one tombstone per delete");
    assert_eq!(
        &final_state, &model.rows[t],
        "{topic}: the events do not rebuild the writer's final table"
    );
    events
}

/// The table as the database has it now.
fn table_rows(client: &Client, db: &str, t: usize) -> BTreeMap<i64, Json> {
    let sql = match t {
        0 => format!("SELECT id, v, IFNULL(note, '<null>') FROM `{db}`.t1 ORDER BY id"),
        _ => format!("SELECT id, qty FROM `{db}`.t2 ORDER BY id"),
    };
    client
        .run(&sql)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let id: i64 = f[0].parse().expect("id");
            let row = match t {
                0 => json!({"id": id, "v": f[1].parse::<u64>().expect("v"),
                    "note": (f[2] != "<null>").then(|| f[2].to_string())}),
                _ => json!({"id": id, "qty": f[1].parse::<u64>().expect("qty")}),
            };
            (id, row)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_is_exactly_once() {
    let Some(url) = env("STRATA_TEST_MYSQL_URL") else {
        return;
    };
    let Some(brokers) = env("STRATA_TEST_KAFKA") else {
        return;
    };
    let began = Instant::now();
    let seed = std::env::var("STRATA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("cdc_mysql_kill: seed {seed} (STRATA_TEST_SEED={seed} repeats the schedule)");
    let mut rng = Rng(seed);
    let client = Client::from_url(&url);
    let db = unique("cdc_kill");
    client.run(&format!(
        "CREATE DATABASE `{db}`;
         CREATE TABLE `{db}`.t1 (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, note VARCHAR(32) NULL);
         CREATE TABLE `{db}`.t2 (id BIGINT PRIMARY KEY, qty BIGINT NOT NULL);"
    ));
    // Rows before the first run: the snapshot (op=r).
    let mut model = Model::default();
    let mut seed_sql = format!("USE `{db}`;\n");
    seed_sql.push_str(&model.insert(0, 20, "r"));
    seed_sql.push_str(&model.insert(1, 10, "r"));
    client.run(&seed_sql);

    let prefix = unique("cdckill").replace('_', "-");
    let topics = [
        (format!("{prefix}.{db}.t1"), 3),
        (format!("{prefix}.{db}.t2"), 2),
    ];
    let names: Vec<(&str, i32)> = topics.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    support::create_topics(&brokers, &names).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let config = dir.path().join("cdc.yaml");
    let server_id = 2_000_000 + (std::process::id() % 100_000) * 10;
    std::fs::write(
        &config,
        format!(
            "url: {url}\nname: killtest\nserver_id: {server_id}\ntables: [{db}.t1, {db}.t2]\n\
             snapshot_mode: initial\nstate_file: {}\ntopic_prefix: {prefix}\n\
             kafka_brokers: {brokers}\nmax_batch_events: 40\nmax_transaction_events: 3\n",
            state.display()
        ),
    )
    .expect("config");
    let mut runs = Runs {
        dir: dir.path().to_path_buf(),
        config: config.clone(),
        started: 0,
    };
    let state_now = || std::fs::read(&state).unwrap_or_default();
    let mut child = runs.start(&[]);
    wait_for("the snapshot to be delivered", || {
        String::from_utf8_lossy(&state_now()).contains("\"snapshot_done\": true")
    });

    // Writes start only now, so that the snapshot holds exactly the seeded rows.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, db, stop) = (client.clone(), db.clone(), stop.clone());
        std::thread::spawn(move || writer(client, db, model, seed, stop))
    };
    let mut rolled_back_runs = Vec::new();
    for k in 0..KILLS {
        let roll_back = k % 2 == 1;
        if roll_back {
            // Kafka gets ahead of the saved position by a few batches, as if each of their
            // state saves had been lost to a crash right after the acknowledgement.
            let old = state_now();
            let mut seen = old.clone();
            let mut saves = 0;
            wait_for("three more state saves", || {
                let now = state_now();
                if !now.is_empty() && now != seen {
                    saves += 1;
                    seen = now;
                }
                saves >= 3
            });
            std::thread::sleep(rng.millis(0, 400));
            runs.kill(&mut child);
            std::fs::write(&state, &old).expect("roll the state file back");
        } else {
            std::thread::sleep(rng.millis(200, 2000));
            runs.kill(&mut child);
        }
        child = runs.start(&[]);
        if roll_back {
            // Let the restarted run get past its read-back, so the next kill tests streaming.
            let n = runs.started - 1;
            wait_for("the read-back after rolling the state file back", || {
                resumed_events(&runs.stderr(n)) > 0
            });
            rolled_back_runs.push(n);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let model = tokio::task::spawn_blocking(move || writer.join().expect("writer thread"))
        .await
        .expect("join");
    // One more kill after the writes stopped, then a run that catches up and exits when idle.
    std::thread::sleep(rng.millis(100, 1000));
    runs.kill(&mut child);
    let mut last = runs.start(&["--stop-when-idle-ms", "3000"]);
    let status = tokio::task::spawn_blocking(move || last.wait().expect("wait"))
        .await
        .expect("join");
    let n = runs.started - 1;
    assert!(status.success(), "the last run failed:\n{}", runs.stderr(n));
    let summary = runs.stdout(n);
    let kills = KILLS + 1;

    let mut checked = 0;
    for (t, (topic, partitions)) in topics.iter().enumerate() {
        let expected = model
            .log
            .iter()
            .filter(|((tt, _), _)| *tt == t)
            .map(|(_, v)| v.len())
            .sum::<usize>()
            + model.deletes[t];
        let records = read_topic(&brokers, topic, *partitions, expected).await;
        checked += check_topic(t, topic, &records, &model);
        assert_eq!(
            table_rows(&client, &db, t),
            model.rows[t],
            "{topic}: the database's final state differs from the writer's"
        );
    }
    assert_eq!(checked, model.changes);
    let skipped: u64 = (0..runs.started)
        .map(|n| resumed_events(&runs.stderr(n)))
        .sum();
    assert!(
        rolled_back_runs
            .iter()
            .all(|n| resumed_events(&runs.stderr(*n)) > 0)
    );
    eprintln!(
        "cdc_mysql_kill: {kills} SIGKILLs ({} with the state rolled back), {} transactions, \
         {checked} changes checked exactly once, {skipped} events found already delivered on \
         restart, {:.1}s; last run: {}",
        rolled_back_runs.len(),
        model.transactions,
        began.elapsed().as_secs_f64(),
        summary.trim()
    );
    client.run(&format!("DROP DATABASE `{db}`"));
}

#[test]
fn urls_become_client_flags() {
    let c = Client::from_url("mysql://cdc:pw@db.internal:3307/x");
    assert_eq!(
        (c.host.as_str(), c.port.as_str(), c.user.as_str()),
        ("db.internal", "3307", "cdc")
    );
    assert_eq!(c.password.as_deref(), Some("pw"));
    let c = Client::from_url("mysql://root@127.0.0.1:33306");
    assert_eq!((c.user.as_str(), c.password), ("root", None));
    assert_eq!(resumed_events("x\nresume: 12 events after …\n"), 12);
}
