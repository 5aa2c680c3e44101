//! `dedup`: keep the first row of each key, drop later ones (counted as duplicates).
//!
//! Semantics are defined row by row in input order, which is what makes streaming equal batch
//! for any split into micro-batches:
//! - the watermark is the largest event time seen so far (rows without one use the watermark);
//! - a row is a duplicate when its key is remembered and, with a `ttl`, the remembered first
//!   occurrence is not older than `watermark - ttl`; an expired key starts a new window;
//! - remembering one more key beyond `max_keys` forgets the oldest (unset, the bound is
//!   [`DEFAULT_MAX_KEYS`]: a TTL alone does not bound memory against a flood of new keys);
//! - a row whose event time is more than `max_future_skew` (default 1 h) past the wall clock
//!   is quarantined before it is seen: one row dated 2099 would otherwise move the watermark
//!   past every key, disable dedup for good, and be saved in every checkpoint after it. The
//!   clock is read once per batch; it is the only input besides the rows, and it only matters
//!   for rows dated in the future.
//!
//! Expired keys are swept from memory whenever the watermark has advanced a quarter TTL; the
//! sweep points are a function of the row sequence alone, so results never depend on batch
//! boundaries (the `max_keys` bound counts the keys remembered after sweeps).
//!
//! Keys are remembered as a 128-bit digest: XXH3-128 of the key's Arrow row encoding under a
//! random per-state seed. A map entry is 32 bytes and an eviction-order entry 24, so two million
//! keys fit in about 150 MB instead of the ~460 MB that owned row bytes took. Two distinct keys
//! share a digest with probability about n²/2¹²⁹ (10⁻²⁶ for 2M keys); the random seed, kept in
//! the checkpoint, means collisions cannot be prepared in advance. A checkpoint holds the digests,
//! the seed and the name of the hashing scheme; a unit test pins a digest so that a change of
//! the row format cannot pass unnoticed. Checkpoints written before digests (the key values
//! themselves) are still read: their keys are hashed on restore under a fixed seed, so the
//! deltas that follow them hash alike after every restart.
//!
//! Deltas: once [`Step::start_delta`] is called, every key remembered, expired or evicted is
//! noted, and [`Step::checkpoint_delta`] writes only those keys (their entry, or a removal) plus
//! the scalars, so a checkpoint costs what changed, not the whole key set. Applying a full
//! checkpoint and then its deltas in order gives exactly the state the step had.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Int64Array, RecordBatch,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, SortField};

use crate::error::{CoreError, Result};
use crate::spec::{DedupSpec, parse_duration_micros};
use crate::step::{Step, StepOutput, split_rejected};

type Hasher = foldhash::fast::RandomState;

#[derive(Debug, Clone, Copy)]
struct Entry {
    first_time: i64,
    seq: u64,
}

/// A key's XXH3-128 digest (its row encoding, under the state's seed), as two words: 8-byte
/// alignment keeps a map entry at 32 bytes, where a `u128` would pad it to 48.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyDigest([u64; 2]);

impl KeyDigest {
    fn of(seed: u64, row: &[u8]) -> Self {
        let h = twox_hash::XxHash3_128::oneshot_with_seed(seed, row);
        // Splitting a u128 into its high and low words; the casts keep exactly those bits.
        KeyDigest([(h >> 64) as u64, h as u64])
    }
}

impl Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
        state.write_u64(self.0[1]);
    }
}

/// The hashing scheme named in checkpoints; another name is refused on restore.
const KEY_HASH_SCHEME: &str = "xxh3-128(arrow-row)";

/// The seed for states restored from checkpoints written before digests: fixed, so the
/// deltas written after such a restore hash alike when the chain is restored again.
const LEGACY_SEED: u64 = 0;

/// The key bound when `max_keys` is unset (56 bytes per key plus the map's spare capacity).
pub const DEFAULT_MAX_KEYS: usize = 5_000_000;

/// The default `max_future_skew`: an hour past the wall clock.
const DEFAULT_MAX_FUTURE_SKEW_MICROS: i64 = 3_600_000_000;

/// Microseconds since the epoch, from the system clock (0 before 1970, saturated far ahead).
fn system_clock_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The built `dedup` step.
pub struct Dedup {
    name: String,
    key_indices: Vec<usize>,
    key_fields: Vec<Field>,
    time_index: Option<usize>,
    ttl: Option<i64>,
    max_keys: Option<usize>,
    /// Event times beyond the clock plus this are quarantined.
    max_future_skew: i64,
    /// The wall clock, in microseconds (a field so tests can fix it).
    clock: fn() -> i64,
    converter: RowConverter,
    /// The XXH3 seed of every digest in this state (saved with it).
    seed: u64,
    seen: HashMap<KeyDigest, Entry, Hasher>,
    order: VecDeque<(u64, KeyDigest)>,
    watermark: i64,
    next_seq: u64,
    swept_at: i64,
    output: SchemaRef,
    /// Keys whose entry changed since the last checkpoint, when deltas are on.
    touched: Option<HashSet<KeyDigest, Hasher>>,
}

/// Metadata key marking a delta checkpoint.
const DELTA: &str = "delta";
/// Metadata key naming the key hashing scheme (absent in checkpoints of key values).
const KEY_HASH: &str = "key_hash";
/// Metadata key holding the digests' seed.
const SEED: &str = "key_seed";
/// Metadata key listing the hashed key columns' types (a digest does not show them).
const KEY_TYPES: &str = "key_types";

impl Dedup {
    /// Resolves keys and the event-time column; memory must be bounded by `ttl` or `max_keys`.
    pub fn build(spec: &DedupSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        if spec.keys.is_empty() {
            return Err(CoreError::spec(
                loc,
                "keys",
                "at least one key column is needed",
            ));
        }
        let mut key_indices = Vec::new();
        let mut key_fields = Vec::new();
        for (i, k) in spec.keys.iter().enumerate() {
            let idx = input.index_of(k).map_err(|_| {
                CoreError::spec(loc, format!("keys[{i}]"), format!("unknown column `{k}`"))
                    .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })?;
            key_indices.push(idx);
            key_fields.push(input.field(idx).clone().with_nullable(true));
        }
        let ttl = spec
            .ttl
            .as_deref()
            .map(parse_duration_micros)
            .transpose()
            .map_err(|e| CoreError::spec(loc, "ttl", e))?;
        if ttl.is_none() && spec.max_keys.is_none() {
            return Err(CoreError::spec(loc, "ttl", "dedup state must be bounded")
                .with_hint("set `ttl` (with `event_time`) and/or `max_keys`"));
        }
        if spec.max_keys == Some(0) {
            return Err(CoreError::spec(loc, "max_keys", "must be at least 1"));
        }
        let max_future_skew = match spec.max_future_skew.as_deref() {
            None => DEFAULT_MAX_FUTURE_SKEW_MICROS,
            Some(_) if spec.event_time.is_none() => {
                return Err(CoreError::spec(
                    loc,
                    "max_future_skew",
                    "only applies with an `event_time` column",
                ));
            }
            Some(text) => parse_duration_micros(text)
                .map_err(|e| CoreError::spec(loc, "max_future_skew", e))?,
        };
        let time_index = match &spec.event_time {
            Some(col) => {
                let idx = input.index_of(col).map_err(|_| {
                    CoreError::spec(loc, "event_time", format!("unknown column `{col}`"))
                })?;
                if !matches!(input.field(idx).data_type(), DataType::Timestamp(..)) {
                    return Err(CoreError::spec(
                        loc,
                        "event_time",
                        format!("`{col}` is not a timestamp"),
                    ));
                }
                Some(idx)
            }
            None if ttl.is_some() => {
                return Err(CoreError::spec(
                    loc,
                    "event_time",
                    "`ttl` needs an `event_time` column",
                ));
            }
            None => None,
        };
        let sort_fields = key_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(sort_fields)
            .map_err(|e| CoreError::spec(loc, "keys", e.to_string()))?;
        Ok(Dedup {
            name: name.to_string(),
            key_indices,
            key_fields,
            time_index,
            ttl,
            max_keys: Some(spec.max_keys.unwrap_or(DEFAULT_MAX_KEYS)),
            max_future_skew,
            clock: system_clock_micros,
            converter,
            // Any unpredictable value will do; foldhash's per-process random state gives one.
            seed: Hasher::default().hash_one(name),
            seen: HashMap::with_hasher(Hasher::default()),
            order: VecDeque::new(),
            watermark: i64::MIN,
            next_seq: 0,
            swept_at: i64::MIN,
            output: input.clone(),
            touched: None,
        })
    }

    /// Number of keys currently remembered (for memory metrics and tests).
    pub fn remembered_keys(&self) -> usize {
        self.seen.len()
    }

    fn event_times(&self, batch: &RecordBatch) -> Result<Option<ArrayRef>> {
        let Some(idx) = self.time_index else {
            return Ok(None);
        };
        let col = batch.column(idx);
        let micros = arrow::compute::cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        Ok(Some(micros))
    }

    fn remember(&mut self, key: KeyDigest, time: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.max_keys.is_some() {
            self.order.push_back((seq, key));
        }
        if let Some(t) = &mut self.touched {
            t.insert(key);
        }
        self.seen.insert(
            key,
            Entry {
                first_time: time,
                seq,
            },
        );
        if let Some(max) = self.max_keys {
            while self.seen.len() > max {
                let Some((old_seq, old_key)) = self.order.pop_front() else {
                    break;
                };
                if self.seen.get(&old_key).is_some_and(|e| e.seq == old_seq) {
                    self.seen.remove(&old_key);
                    if let Some(t) = &mut self.touched {
                        t.insert(old_key);
                    }
                }
            }
        }
    }

    /// Splits off the rows dated more than `max_future_skew` past the clock, with their reason;
    /// the event times (`times`, read once per batch) are filtered alike.
    fn quarantine_future_rows(
        &self,
        batch: RecordBatch,
        times: Option<ArrayRef>,
    ) -> Result<(RecordBatch, Option<ArrayRef>, Option<crate::step::Rejected>)> {
        let Some(micros) = times else {
            return Ok((batch, None, None));
        };
        let times = micros.as_primitive::<TimestampMicrosecondType>();
        let limit = (self.clock)().saturating_add(self.max_future_skew);
        let future = arrow::compute::kernels::cmp::gt(
            times,
            &arrow::array::TimestampMicrosecondArray::new_scalar(limit),
        )?;
        if future.true_count() == 0 {
            return Ok((batch, Some(micros), None));
        }
        let column = self
            .time_index
            .map(|i| batch.schema().field(i).name().clone())
            .unwrap_or_default();
        let skew = self.max_future_skew;
        let (kept, rejected) = split_rejected(batch, &future, |row| {
            format!(
                "dedup: event time `{column}` = {} is more than {} s past the clock \
                 (max_future_skew); it would expire every remembered key",
                crate::step::render_value(times, row),
                skew / 1_000_000
            )
        })?;
        let kept_times = arrow::compute::filter(&micros, &arrow::compute::not(&future)?)?;
        Ok((kept, Some(kept_times), rejected))
    }

    /// Forgets expired keys once the watermark has moved a quarter TTL since the last sweep.
    /// Checked per row, so the sweep points depend only on the row sequence — never on how the
    /// input was split into batches — which keeps the `max_keys` bound deterministic too.
    fn maybe_sweep(&mut self) {
        let Some(ttl) = self.ttl else { return };
        if self.watermark == i64::MIN
            || self.watermark.saturating_sub(self.swept_at) < (ttl / 4).max(1)
        {
            return;
        }
        let horizon = self.watermark.saturating_sub(ttl);
        let touched = &mut self.touched;
        self.seen.retain(|k, e| {
            let keep = e.first_time >= horizon;
            if !keep && let Some(t) = touched.as_mut() {
                t.insert(*k);
            }
            keep
        });
        if self.max_keys.is_some() {
            let seen = &self.seen;
            self.order
                .retain(|(seq, k)| seen.get(k).is_some_and(|e| e.seq == *seq));
        }
        self.swept_at = self.watermark;
    }
}

impl Step for Dedup {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let times = self.event_times(&batch)?;
        let (batch, times, rejected) = self.quarantine_future_rows(batch, times)?;
        let keys: Vec<ArrayRef> = self
            .key_indices
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let rows = self.converter.convert_columns(&keys)?;
        let seed = self.seed;
        let digests: Vec<KeyDigest> = rows
            .iter()
            .map(|r| KeyDigest::of(seed, r.as_ref()))
            .collect();
        drop(rows);
        let times = times
            .as_ref()
            .map(|t| t.as_primitive::<TimestampMicrosecondType>());
        let mut keep = BooleanBufferBuilder::new(batch.num_rows());
        for (i, &key) in digests.iter().enumerate() {
            if let Some(t) = times
                && t.is_valid(i)
                && t.value(i) > self.watermark
            {
                self.watermark = t.value(i);
                self.maybe_sweep();
            }
            let time = match times {
                Some(t) if t.is_valid(i) => t.value(i),
                _ => self.watermark,
            };
            let duplicate = match self.seen.get(&key) {
                Some(e) => match self.ttl {
                    Some(ttl) => e.first_time >= self.watermark.saturating_sub(ttl),
                    None => true,
                },
                None => false,
            };
            if !duplicate {
                self.remember(key, time);
            }
            keep.append(!duplicate);
        }
        let mask = BooleanArray::new(keep.finish(), None);
        let dropped = mask.false_count() as u64;
        let kept = if dropped == 0 {
            batch
        } else {
            arrow::compute::filter_record_batch(&batch, &mask)?
        };
        Ok(StepOutput {
            batch: kept,
            rejected,
            dropped,
            rules: Vec::new(),
        })
    }

    fn checkpoint(&self) -> Result<Option<Vec<u8>>> {
        let mut entries: Vec<(&KeyDigest, Option<&Entry>)> =
            self.seen.iter().map(|(k, e)| (k, Some(e))).collect();
        entries.sort_by_key(|(_, e)| e.map(|e| e.seq));
        self.encode(&entries, false).map(Some)
    }

    fn start_delta(&mut self) {
        self.touched = Some(HashSet::with_hasher(Hasher::default()));
    }

    fn checkpoint_delta(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(touched) = self.touched.take() else {
            // Not recording yet: the whole state, from which deltas start.
            self.start_delta();
            return self.checkpoint();
        };
        let entries: Vec<(&KeyDigest, Option<&Entry>)> =
            touched.iter().map(|k| (k, self.seen.get(k))).collect();
        let out = self.encode(&entries, true)?;
        self.start_delta();
        Ok(Some(out))
    }

    fn restore_delta(&mut self, state: &[u8]) -> Result<()> {
        self.read(state, true)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        self.read(state, false)
    }
}

impl Dedup {
    /// Arrow IPC bytes of `entries` (a `None` entry is a removal, in deltas) and the scalars.
    fn encode(&self, entries: &[(&KeyDigest, Option<&Entry>)], delta: bool) -> Result<Vec<u8>> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(
                entries.iter().map(|(k, _)| k.0[0]),
            )),
            Arc::new(UInt64Array::from_iter_values(
                entries.iter().map(|(k, _)| k.0[1]),
            )),
        ];
        columns.push(Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|(_, e)| e.map_or(0, |e| e.first_time)),
        )));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            entries.iter().map(|(_, e)| e.map_or(0, |e| e.seq)),
        )));
        let mut fields = vec![
            Field::new("__key_hi", DataType::UInt64, false),
            Field::new("__key_lo", DataType::UInt64, false),
        ];
        fields.push(Field::new("__first_time", DataType::Int64, false));
        fields.push(Field::new("__seq", DataType::UInt64, false));
        if delta {
            columns.push(Arc::new(BooleanArray::from_iter(
                entries.iter().map(|(_, e)| Some(e.is_some())),
            )));
            fields.push(Field::new("__present", DataType::Boolean, false));
        }
        let mut metadata: HashMap<String, String> = [
            ("watermark".to_string(), self.watermark.to_string()),
            ("next_seq".to_string(), self.next_seq.to_string()),
            ("swept_at".to_string(), self.swept_at.to_string()),
            (KEY_HASH.to_string(), KEY_HASH_SCHEME.to_string()),
            (SEED.to_string(), self.seed.to_string()),
            (KEY_TYPES.to_string(), self.key_types()),
        ]
        .into_iter()
        .collect();
        if delta {
            metadata.insert(DELTA.to_string(), "1".to_string());
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &schema)?;
        w.write(&batch)?;
        w.finish()?;
        drop(w);
        Ok(crate::ipc_guard::seal(out))
    }

    /// The key columns' types, as saved beside the digests.
    fn key_types(&self) -> String {
        let types: Vec<String> = self
            .key_fields
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        types.join(",")
    }

    /// Reads a full checkpoint (replacing the state) or, with `apply`, a delta or a full one
    /// (a delta's keys are set or removed on top of the current state).
    fn read(&mut self, state: &[u8], apply: bool) -> Result<()> {
        let bad = |p: String| CoreError::Checkpoint {
            problem: format!("step `{}`: {p}", self.name),
        };
        // arrow-ipc panics on corrupt input: the seal's checksum and the framing check come
        // first.
        let state = crate::ipc_guard::open(state).map_err(bad)?;
        let reader = StreamReader::try_new(state, None).map_err(|e| bad(e.to_string()))?;
        let schema = reader.schema();
        let delta = schema.metadata().get(DELTA).is_some_and(|v| v == "1");
        if delta && !apply {
            return Err(bad(
                "a delta checkpoint cannot be restored without the full checkpoint it follows"
                    .into(),
            ));
        }
        let hashed = match schema.metadata().get(KEY_HASH) {
            None => false,
            Some(scheme) if scheme == KEY_HASH_SCHEME => true,
            Some(scheme) => {
                return Err(bad(format!(
                    "its keys are hashed with `{scheme}`; this build hashes with \
                     `{KEY_HASH_SCHEME}`"
                )));
            }
        };
        let n_keys = if hashed { 2 } else { self.key_fields.len() };
        let want = n_keys + if delta { 3 } else { 2 };
        let fields = schema.fields();
        let keys_match = if hashed {
            fields.len() >= 2
                && fields[..2]
                    .iter()
                    .all(|f| f.data_type() == &DataType::UInt64)
                && schema.metadata().get(KEY_TYPES) == Some(&self.key_types())
        } else {
            fields.len() >= n_keys
                && fields[..n_keys]
                    .iter()
                    .zip(&self.key_fields)
                    .all(|(a, b)| a.data_type() == b.data_type())
        };
        let matches = keys_match
            && fields.len() == want
            && fields[n_keys].data_type() == &DataType::Int64
            && fields[n_keys + 1].data_type() == &DataType::UInt64
            && (!delta || fields[n_keys + 2].data_type() == &DataType::Boolean);
        if !matches {
            return Err(bad(
                "the saved key columns do not match this step's keys".into()
            ));
        }
        let meta = |k: &str| -> Result<i64> {
            schema
                .metadata()
                .get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(format!("missing `{k}`")))
        };
        let (watermark, swept_at) = (meta("watermark")?, meta("swept_at")?);
        let next_seq =
            u64::try_from(meta("next_seq")?).map_err(|_| bad("negative `next_seq`".into()))?;
        let seed = if hashed {
            schema
                .metadata()
                .get(SEED)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| bad(format!("missing `{SEED}`")))?
        } else if delta {
            // A delta of key values follows a full state of key values, restored under the
            // legacy seed (or is applied to a live state, whose seed its keys take).
            self.seed
        } else {
            LEGACY_SEED
        };
        if delta && seed != self.seed {
            return Err(bad(
                "this delta's keys were hashed under another seed than the state it is \
                 applied to: it does not follow that state's full checkpoint"
                    .into(),
            ));
        }
        let mut changes: Vec<(KeyDigest, Option<Entry>)> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| bad(e.to_string()))?;
            let digests: Vec<KeyDigest> = if hashed {
                let word = |i: usize| {
                    batch
                        .column(i)
                        .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                        .ok_or_else(|| bad("a key digest column is not UInt64".into()))
                };
                let (hi, lo) = (word(0)?, word(1)?);
                hi.values()
                    .iter()
                    .zip(lo.values().iter())
                    .map(|(&h, &l)| KeyDigest([h, l]))
                    .collect()
            } else {
                let rows = self.converter.convert_columns(&batch.columns()[..n_keys])?;
                rows.iter()
                    .map(|r| KeyDigest::of(seed, r.as_ref()))
                    .collect()
            };
            let times = batch
                .column(n_keys)
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
                .ok_or_else(|| bad("`__first_time` is not Int64".into()))?;
            let seqs = batch
                .column(n_keys + 1)
                .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                .ok_or_else(|| bad("`__seq` is not UInt64".into()))?;
            let present = if delta {
                Some(
                    batch
                        .column(n_keys + 2)
                        .as_boolean_opt()
                        .ok_or_else(|| bad("`__present` is not Boolean".into()))?,
                )
            } else {
                None
            };
            for (i, key) in digests.into_iter().enumerate() {
                let entry = Entry {
                    first_time: times.value(i),
                    seq: seqs.value(i),
                };
                let keep = present.is_none_or(|p| p.value(i));
                changes.push((key, keep.then_some(entry)));
            }
        }
        // Everything was read and checked: only now is the state changed.
        if !delta {
            self.seen.clear();
            self.order.clear();
            self.seed = seed;
        }
        // The eviction order grows by the entries read, oldest first. A delta's present keys
        // were all remembered after everything before it, so they extend the order as they
        // are (no re-sort of the whole state per delta of a chain); the keys it removes leave
        // stale order entries, which eviction skips, as it does in a live step.
        let mut added: Vec<(u64, KeyDigest)> = Vec::new();
        for (key, entry) in changes {
            match entry {
                Some(e) => {
                    if self.max_keys.is_some() {
                        added.push((e.seq, key));
                    }
                    self.seen.insert(key, e);
                }
                None => {
                    self.seen.remove(&key);
                }
            }
        }
        added.sort_unstable_by_key(|(seq, _)| *seq);
        self.order.extend(added);
        self.watermark = watermark;
        self.next_seq = next_seq;
        self.swept_at = swept_at;
        if self.touched.is_some() {
            self.start_delta();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::ipc::reader::StreamReader;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]))
    }

    fn dedup(max_keys: Option<usize>) -> Dedup {
        let spec = DedupSpec {
            name: None,
            keys: vec!["k".into()],
            event_time: Some("ts".into()),
            ttl: Some("10s".into()),
            max_keys,
            max_future_skew: None,
        };
        let mut d = Dedup::build(&spec, "d", "steps[0]", &schema()).expect("build");
        d.clock = || 0;
        d
    }

    /// Rows `(key, seconds)`.
    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| r.1 * 1_000_000),
                )),
            ],
        )
        .expect("batch")
    }

    /// The state as comparable batches (schema metadata compares as a map, not in IPC order).
    fn state(d: &Dedup) -> Vec<RecordBatch> {
        let bytes = d.checkpoint().expect("checkpoint").expect("state");
        let ipc = crate::ipc_guard::open(&bytes).expect("sealed");
        StreamReader::try_new(ipc, None)
            .expect("ipc")
            .map(|b| b.expect("batch"))
            .collect()
    }

    #[test]
    fn deltas_carry_new_expired_and_evicted_keys() {
        for max_keys in [None, Some(3)] {
            let mut live = dedup(max_keys);
            live.process(batch(&[(1, 0), (2, 1), (3, 2)]))
                .expect("process");
            let full = live.checkpoint_delta().expect("full").expect("state");
            // Key 4 is new; the watermark jumps past the ttl, so 1..3 expire (or are evicted).
            live.process(batch(&[(4, 20), (1, 21)])).expect("process");
            let d1 = live.checkpoint_delta().expect("delta").expect("state");
            live.process(batch(&[(5, 22), (6, 23)])).expect("process");
            let d2 = live.checkpoint_delta().expect("delta").expect("state");

            let mut restored = dedup(max_keys);
            restored.restore(&full).expect("full");
            restored.restore_delta(&d1).expect("d1");
            restored.restore_delta(&d2).expect("d2");
            assert_eq!(restored.remembered_keys(), live.remembered_keys());
            assert_eq!(state(&restored), state(&live), "max_keys {max_keys:?}");
            // A delta alone is refused as a full state.
            let err = dedup(max_keys).restore(&d1).expect_err("bare delta");
            assert!(err.to_string().contains("full checkpoint"), "{err}");
        }
    }

    /// Rows `(key, seconds)` with the row ids a pipeline gives them.
    fn batch_with_ids(rows: &[(i64, i64)]) -> RecordBatch {
        let plain = batch(rows);
        let mut fields: Vec<Field> = plain
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(crate::step::ROW_ID, DataType::UInt32, false));
        let mut columns = plain.columns().to_vec();
        columns.push(Arc::new(arrow::array::UInt32Array::from_iter_values(
            0..rows.len() as u32,
        )));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
    }

    #[test]
    fn a_row_dated_far_ahead_is_quarantined_and_does_not_expire_keys() {
        let spec = DedupSpec {
            name: None,
            keys: vec!["k".into()],
            event_time: Some("ts".into()),
            ttl: Some("10s".into()),
            max_keys: None,
            max_future_skew: Some("1h".into()),
        };
        let input = batch_with_ids(&[]).schema();
        let mut d = Dedup::build(&spec, "d", "steps[0]", &input).expect("build");
        d.clock = || 100 * 1_000_000;
        // Year ~2099 against a clock at t = 100 s.
        let out = d
            .process(batch_with_ids(&[(1, 50), (2, 4_070_000_000), (1, 60)]))
            .expect("process");
        let rejected = out.rejected.expect("the 2099 row is quarantined");
        assert_eq!(rejected.row_ids.values().to_vec(), vec![1]);
        assert!(
            rejected.reasons.value(0).contains("max_future_skew"),
            "{}",
            rejected.reasons.value(0)
        );
        // Key 1 at 60 s is still a duplicate: the watermark did not jump to 2099.
        assert_eq!(out.dropped, 1);
        assert_eq!(out.batch.num_rows(), 1);
        assert_eq!(
            d.watermark,
            60 * 1_000_000,
            "moved by the 60 s row, not to 2099"
        );
        // Within the skew, a future row is accepted as before.
        let out = d.process(batch_with_ids(&[(3, 3_000)])).expect("process");
        assert!(out.rejected.is_none());
    }

    #[test]
    fn a_ttl_alone_still_bounds_the_key_count() {
        let spec = DedupSpec {
            name: None,
            keys: vec!["k".into()],
            event_time: Some("ts".into()),
            ttl: Some("10s".into()),
            max_keys: None,
            max_future_skew: None,
        };
        let d = Dedup::build(&spec, "d", "steps[0]", &schema()).expect("build");
        assert_eq!(d.max_keys, Some(DEFAULT_MAX_KEYS));
        let no_time = DedupSpec {
            event_time: None,
            ttl: None,
            max_keys: Some(5),
            max_future_skew: Some("1h".into()),
            ..spec
        };
        let err = Dedup::build(&no_time, "d", "steps[0]", &schema())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("max_future_skew"), "{err}");
    }

    #[test]
    fn a_key_costs_a_32_byte_map_entry_and_a_24_byte_order_entry() {
        assert_eq!(std::mem::size_of::<(KeyDigest, Entry)>(), 32);
        assert_eq!(std::mem::size_of::<(u64, KeyDigest)>(), 24);
    }

    /// The digest of a fixed key under a fixed seed. If an Arrow upgrade changes the row
    /// encoding, this fails: every saved state would stop matching its keys, so the scheme
    /// name must change and a migration be written.
    #[test]
    fn the_key_digest_of_a_fixed_key_is_pinned() {
        let converter = RowConverter::new(vec![
            SortField::new(DataType::Utf8),
            SortField::new(DataType::Int64),
        ])
        .expect("converter");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::StringArray::from(vec![Some("dev-1"), None])),
            Arc::new(Int64Array::from(vec![Some(7), Some(-1)])),
        ];
        let rows = converter.convert_columns(&columns).expect("rows");
        let digests: Vec<KeyDigest> = rows.iter().map(|r| KeyDigest::of(42, r.as_ref())).collect();
        assert_eq!(digests, PINNED_DIGESTS);
    }

    const PINNED_DIGESTS: [KeyDigest; 2] = [
        KeyDigest([982003146031504470, 10201217911774122247]),
        KeyDigest([14911016388131064000, 16540884874447044889]),
    ];

    /// A checkpoint as builds before digests wrote it: the key values themselves.
    fn legacy_checkpoint(keys: &[(i64, i64, u64)], delta: Option<&[bool]>) -> Vec<u8> {
        let mut fields = vec![
            Field::new("k", DataType::Int64, true),
            Field::new("__first_time", DataType::Int64, false),
            Field::new("__seq", DataType::UInt64, false),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(keys.iter().map(|k| k.0))),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| k.1 * 1_000_000),
            )),
            Arc::new(UInt64Array::from_iter_values(keys.iter().map(|k| k.2))),
        ];
        let mut metadata: HashMap<String, String> = [
            ("watermark", "2000000"),
            ("next_seq", "3"),
            ("swept_at", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(present) = delta {
            fields.push(Field::new("__present", DataType::Boolean, false));
            columns.push(Arc::new(BooleanArray::from(present.to_vec())));
            metadata.insert(DELTA.into(), "1".into());
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &schema).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
        drop(w);
        crate::ipc_guard::seal(out)
    }

    #[test]
    fn a_checkpoint_of_key_values_from_an_earlier_build_still_restores() {
        let full = legacy_checkpoint(&[(1, 0, 0), (2, 1, 1), (3, 2, 2)], None);
        let old_delta = legacy_checkpoint(&[(2, 1, 1)], Some(&[false]));
        // Restored twice, as after two restarts: the legacy keys hash alike each time, so a
        // delta written after the first restore applies after the second.
        let mut first = dedup(Some(10));
        first.start_delta();
        first.restore(&full).expect("legacy full");
        first.restore_delta(&old_delta).expect("legacy delta");
        assert_eq!(first.remembered_keys(), 2);
        let out = first
            .process(batch(&[(1, 3), (2, 3), (4, 3)]))
            .expect("process");
        assert_eq!(
            out.dropped, 1,
            "key 1 is remembered; key 2 was removed by the delta"
        );
        let new_delta = first.checkpoint_delta().expect("delta").expect("state");

        let mut second = dedup(Some(10));
        second.restore(&full).expect("legacy full");
        second.restore_delta(&old_delta).expect("legacy delta");
        second
            .restore_delta(&new_delta)
            .expect("a new delta on a legacy chain");
        assert_eq!(state(&second), state(&first));
        let out = second
            .process(batch(&[(1, 4), (2, 4), (3, 4), (4, 4), (5, 4)]))
            .expect("process");
        assert_eq!(out.dropped, 4, "only key 5 is new");
    }

    #[test]
    fn a_delta_from_another_state_or_other_keys_is_refused() {
        let mut a = dedup(None);
        a.process(batch(&[(1, 0)])).expect("process");
        let full_a = a.checkpoint_delta().expect("full").expect("state");
        a.process(batch(&[(2, 1)])).expect("process");
        let delta_a = a.checkpoint_delta().expect("delta").expect("state");
        let mut b = dedup(None);
        b.process(batch(&[(1, 0)])).expect("process");
        let err = b
            .restore_delta(&delta_a)
            .expect_err("another state's delta");
        assert!(err.to_string().contains("another seed"), "{err}");
        b.restore(&full_a).expect("full");
        b.restore_delta(&delta_a).expect("its own chain");
        assert_eq!(state(&b), state(&a));

        // A state saved under other key types is refused.
        let spec = DedupSpec {
            name: None,
            keys: vec!["s".into()],
            event_time: None,
            ttl: None,
            max_keys: Some(5),
            max_future_skew: None,
        };
        let strings = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let mut other = Dedup::build(&spec, "d", "steps[0]", &strings).expect("build");
        let err = other
            .restore(&full_a)
            .expect_err("Int64 keys into a Utf8 step");
        assert!(err.to_string().contains("do not match"), "{err}");
    }

    proptest::proptest! {
        /// Whatever bytes a checkpoint holds (a corrupt file, another step's state, a truncated
        /// write), restoring it is an error or a state, never a panic.
        #[test]
        fn restoring_any_bytes_never_panics(
            cut in 0usize..2_000,
            flips in proptest::collection::vec((0usize..2_000, proptest::prelude::any::<u8>()), 0..8),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let mut live = dedup(Some(3));
            live.process(batch(&[(1, 0), (2, 1), (3, 2)])).expect("process");
            let mut bytes = live.checkpoint().expect("checkpoint").expect("state");
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] ^= b;
            }
            bytes.truncate(cut.min(bytes.len()));
            for state in [bytes.clone(), garbage.clone()] {
                let _ = dedup(Some(3)).restore(&state);
                let _ = dedup(None).restore_delta(&state);
            }
        }
    }
}
