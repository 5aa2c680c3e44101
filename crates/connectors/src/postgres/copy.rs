//! A push decoder of PostgreSQL's binary COPY format into Arrow record batches.
//!
//! Bytes may arrive split anywhere (the server usually sends one row per message, but nothing
//! here relies on it): [`CopyDecoder::push`] decodes every complete tuple, appending each field
//! straight to its column's Arrow builder, and keeps the incomplete tail for the next push. A
//! batch is cut every `batch_rows` rows; [`CopyDecoder::finish`] checks the trailer arrived.
//!
//! Format: the signature `PGCOPY\n\xff\r\n\0`, an i32 of flags, an i32 header-extension length and
//! that many bytes; then per tuple an i16 field count (-1 ends the data) and per field an i32
//! length (-1 for NULL) followed by the value in the type's binary send format (big-endian).
//!
//! A value Arrow cannot hold faithfully (NaN or out-of-range `numeric`, ±infinity dates and
//! timestamps, multi-dimensional arrays, invalid UTF-8) is an error naming the column and the
//! row, with the hint to read that column through `text_columns`. Nothing is silently altered.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray,
    RecordBatch, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{FieldRef, SchemaRef};

use super::types::{PgColumn, PgKind, item_field, schema_of};
use crate::error::{ConnectorError, Result};

/// The 11-byte signature of binary COPY.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds between 1970-01-01 and 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Why a value could not be decoded (the decoder adds table, column and row).
type ValueResult = std::result::Result<(), String>;

/// One column's Arrow builder with its decoding.
enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Numeric(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Jsonb(StringBuilder),
    Uuid(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        inner: Box<ColumnBuilder>,
    },
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

fn want(bytes: &[u8], n: usize, what: &str) -> ValueResult {
    if bytes.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{what} value of {} bytes, expected {n}",
            bytes.len()
        ))
    }
}

fn utf8(bytes: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("invalid UTF-8 text: {e}"))
}

/// Decodes a binary `numeric` into an integer scaled by `10^scale`, refusing any value that
/// would lose digits or not fit `precision`.
pub fn numeric_to_i128(
    bytes: &[u8],
    precision: u8,
    scale: i8,
) -> std::result::Result<i128, String> {
    if bytes.len() < 8 {
        return Err(format!(
            "numeric value of {} bytes is truncated",
            bytes.len()
        ));
    }
    let ndigits = be_i16(&bytes[0..2]);
    let weight = be_i16(&bytes[2..4]) as i32;
    let sign = u16::from_be_bytes([bytes[4], bytes[5]]);
    if ndigits < 0 || bytes.len() != 8 + 2 * ndigits as usize {
        return Err(format!(
            "numeric with {ndigits} digits in {} bytes",
            bytes.len()
        ));
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric NaN has no decimal value".into()),
        0xD000 | 0xF000 => return Err("numeric ±Infinity has no decimal value".into()),
        other => return Err(format!("numeric with unknown sign word {other:#06x}")),
    }
    let overflow = || format!("numeric does not fit Decimal128({precision}, {scale})");
    let mut acc: i128 = 0;
    for i in 0..ndigits as usize {
        let d = be_i16(&bytes[8 + 2 * i..10 + 2 * i]);
        if !(0..10_000).contains(&d) {
            return Err(format!("numeric base-10000 digit {d} out of range"));
        }
        acc = acc
            .checked_mul(10_000)
            .and_then(|a| a.checked_add(d as i128))
            .ok_or_else(overflow)?;
    }
    // acc is in units of 10000^(weight - ndigits + 1); we want units of 10^-scale.
    let exp = 4 * (weight - ndigits as i32 + 1) + scale as i32;
    if acc != 0 {
        if exp >= 0 {
            let factor = 10i128.checked_pow(exp as u32).ok_or_else(overflow)?;
            acc = acc.checked_mul(factor).ok_or_else(overflow)?;
        } else {
            let divisor = 10i128.checked_pow((-exp) as u32);
            match divisor {
                Some(div) if acc % div == 0 => acc /= div,
                _ => {
                    return Err(format!(
                        "numeric has more than {scale} fractional digits (Decimal128({precision}, {scale}) would round it)"
                    ));
                }
            }
        }
    }
    if acc >= 10i128.pow(precision as u32) {
        return Err(overflow());
    }
    Ok(if sign == 0x4000 { -acc } else { acc })
}

fn uuid_text(bytes: &[u8], out: &mut [u8; 36]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut j = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[(b >> 4) as usize];
        out[j + 1] = HEX[(b & 0xf) as usize];
        j += 2;
    }
}

impl ColumnBuilder {
    fn new(kind: &PgKind, capacity: usize) -> Result<Self> {
        Ok(match kind {
            PgKind::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            PgKind::Int2 => ColumnBuilder::Int2(Int16Builder::with_capacity(capacity)),
            PgKind::Int4 => ColumnBuilder::Int4(Int32Builder::with_capacity(capacity)),
            PgKind::Int8 => ColumnBuilder::Int8(Int64Builder::with_capacity(capacity)),
            PgKind::Float4 => ColumnBuilder::Float4(Float32Builder::with_capacity(capacity)),
            PgKind::Float8 => ColumnBuilder::Float8(Float64Builder::with_capacity(capacity)),
            PgKind::Numeric { precision, scale } => ColumnBuilder::Numeric(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| {
                        ConnectorError::Internal(format!("Decimal128({precision}, {scale}): {e}"))
                    })?,
                *precision,
                *scale,
            ),
            PgKind::Text => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            PgKind::Jsonb => {
                ColumnBuilder::Jsonb(StringBuilder::with_capacity(capacity, capacity * 32))
            }
            PgKind::Uuid => {
                ColumnBuilder::Uuid(StringBuilder::with_capacity(capacity, capacity * 36))
            }
            PgKind::Bytea => {
                ColumnBuilder::Bytea(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            PgKind::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            PgKind::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            PgKind::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), None)
            }
            PgKind::Timestamptz => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                Some(Arc::from("UTC")),
            ),
            PgKind::Array(inner) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                ColumnBuilder::List {
                    field: item_field(inner),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                    inner: Box::new(ColumnBuilder::new(inner, capacity)?),
                }
            }
        })
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int2(b) => b.append_null(),
            ColumnBuilder::Int4(b) => b.append_null(),
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Float4(b) => b.append_null(),
            ColumnBuilder::Float8(b) => b.append_null(),
            ColumnBuilder::Numeric(b, ..) => b.append_null(),
            ColumnBuilder::Text(b) | ColumnBuilder::Jsonb(b) | ColumnBuilder::Uuid(b) => {
                b.append_null()
            }
            ColumnBuilder::Bytea(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Timestamp(b, _) => b.append_null(),
            ColumnBuilder::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    fn append(&mut self, v: &[u8]) -> ValueResult {
        match self {
            ColumnBuilder::Bool(b) => {
                want(v, 1, "bool")?;
                b.append_value(v[0] != 0);
            }
            ColumnBuilder::Int2(b) => {
                want(v, 2, "int2")?;
                b.append_value(be_i16(v));
            }
            ColumnBuilder::Int4(b) => {
                want(v, 4, "int4")?;
                b.append_value(be_i32(v));
            }
            ColumnBuilder::Int8(b) => {
                want(v, 8, "int8")?;
                b.append_value(be_i64(v));
            }
            ColumnBuilder::Float4(b) => {
                want(v, 4, "float4")?;
                b.append_value(f32::from_bits(be_i32(v) as u32));
            }
            ColumnBuilder::Float8(b) => {
                want(v, 8, "float8")?;
                b.append_value(f64::from_bits(be_i64(v) as u64));
            }
            ColumnBuilder::Numeric(b, precision, scale) => {
                b.append_value(numeric_to_i128(v, *precision, *scale)?);
            }
            ColumnBuilder::Text(b) => b.append_value(utf8(v)?),
            ColumnBuilder::Jsonb(b) => match v.split_first() {
                Some((&1, json)) => b.append_value(utf8(json)?),
                Some((version, _)) => {
                    return Err(format!("jsonb binary version {version}, expected 1"));
                }
                None => return Err("empty jsonb value".into()),
            },
            ColumnBuilder::Uuid(b) => {
                want(v, 16, "uuid")?;
                let mut text = [0u8; 36];
                uuid_text(v, &mut text);
                b.append_value(std::str::from_utf8(&text).map_err(|e| e.to_string())?);
            }
            ColumnBuilder::Bytea(b) => b.append_value(v),
            ColumnBuilder::Date(b) => {
                want(v, 4, "date")?;
                let days = be_i32(v);
                if days == i32::MAX || days == i32::MIN {
                    return Err("date ±infinity has no Date32 value".into());
                }
                let unix = days
                    .checked_add(PG_EPOCH_DAYS)
                    .ok_or_else(|| format!("date {days} days after 2000-01-01 overflows Date32"))?;
                b.append_value(unix);
            }
            ColumnBuilder::Time(b) => {
                want(v, 8, "time")?;
                b.append_value(be_i64(v));
            }
            ColumnBuilder::Timestamp(b, _) => {
                want(v, 8, "timestamp")?;
                let micros = be_i64(v);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("timestamp ±infinity has no Arrow value".into());
                }
                let unix = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| "timestamp out of the Arrow range".to_string())?;
                b.append_value(unix);
            }
            ColumnBuilder::List {
                offsets,
                nulls,
                inner,
                ..
            } => {
                if v.len() < 12 {
                    return Err(format!("array value of {} bytes is truncated", v.len()));
                }
                let ndim = be_i32(&v[0..4]);
                let mut count = 0usize;
                match ndim {
                    0 => {}
                    1 => {
                        if v.len() < 20 {
                            return Err("array header truncated".into());
                        }
                        let len = be_i32(&v[12..16]);
                        if len < 0 {
                            return Err(format!("array of length {len}"));
                        }
                        let mut pos = 20usize;
                        for _ in 0..len {
                            let Some(h) = v.get(pos..pos + 4) else {
                                return Err("array element truncated".into());
                            };
                            let n = be_i32(h);
                            pos += 4;
                            if n < 0 {
                                inner.append_null();
                            } else {
                                let end = pos + n as usize;
                                let Some(bytes) = v.get(pos..end) else {
                                    return Err("array element truncated".into());
                                };
                                inner.append(bytes)?;
                                pos = end;
                            }
                            count += 1;
                        }
                        if pos != v.len() {
                            return Err("array value has trailing bytes".into());
                        }
                    }
                    n => {
                        return Err(format!(
                            "{n}-dimensional array; only one-dimensional arrays map to List"
                        ));
                    }
                }
                let last = offsets.last().copied().unwrap_or(0);
                let next = i32::try_from(count)
                    .ok()
                    .and_then(|c| last.checked_add(c))
                    .ok_or_else(|| "list offsets overflow i32 (use a smaller batch)".to_string())?;
                offsets.push(next);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int2(b) => Arc::new(b.finish()),
            ColumnBuilder::Int4(b) => Arc::new(b.finish()),
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Float4(b) => Arc::new(b.finish()),
            ColumnBuilder::Float8(b) => Arc::new(b.finish()),
            ColumnBuilder::Numeric(b, ..) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) | ColumnBuilder::Jsonb(b) | ColumnBuilder::Uuid(b) => {
                Arc::new(b.finish())
            }
            ColumnBuilder::Bytea(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            ColumnBuilder::List {
                field,
                offsets,
                nulls,
                inner,
            } => {
                let values = inner.finish()?;
                let taken = std::mem::replace(offsets, vec![0]);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(taken));
                Arc::new(
                    ListArray::try_new(field.clone(), offsets, values, nulls.finish()).map_err(
                        |e| ConnectorError::Internal(format!("building a list column: {e}")),
                    )?,
                )
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Bool(b) => b.len(),
            ColumnBuilder::Int2(b) => b.len(),
            ColumnBuilder::Int4(b) => b.len(),
            ColumnBuilder::Int8(b) => b.len(),
            ColumnBuilder::Float4(b) => b.len(),
            ColumnBuilder::Float8(b) => b.len(),
            ColumnBuilder::Numeric(b, ..) => b.len(),
            ColumnBuilder::Text(b) | ColumnBuilder::Jsonb(b) | ColumnBuilder::Uuid(b) => b.len(),
            ColumnBuilder::Bytea(b) => b.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Time(b) => b.len(),
            ColumnBuilder::Timestamp(b, _) => b.len(),
            ColumnBuilder::List { offsets, .. } => offsets.len() - 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Tuples,
    Done,
}

/// Decodes one `COPY … TO STDOUT (FORMAT binary)` stream into batches.
pub struct CopyDecoder {
    table: String,
    columns: Vec<PgColumn>,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    batch_rows: usize,
    rows: u64,
    state: State,
    pending: Vec<u8>,
    ready: Vec<RecordBatch>,
}

impl std::fmt::Debug for CopyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyDecoder")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .field("state", &self.state)
            .finish()
    }
}

impl CopyDecoder {
    /// A decoder for `columns` of `table` (named in errors), cutting batches of `batch_rows`.
    pub fn new(table: &str, columns: &[PgColumn], batch_rows: usize) -> Result<Self> {
        let batch_rows = batch_rows.max(1);
        let builders = columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.kind, batch_rows.min(65_536)))
            .collect::<Result<Vec<_>>>()?;
        Ok(CopyDecoder {
            table: table.to_string(),
            columns: columns.to_vec(),
            schema: schema_of(columns),
            builders,
            batch_rows,
            rows: 0,
            state: State::Header,
            pending: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Decodes every complete tuple of `bytes` (after what was kept from earlier pushes).
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if self.pending.is_empty() {
            let used = self.decode(bytes)?;
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(bytes);
            let used = self.decode(&buf)?;
            buf.drain(..used);
            self.pending = buf;
        }
        Ok(())
    }

    /// Batches completed so far (each `batch_rows` rows).
    pub fn take_ready(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.ready)
    }

    /// Ends the stream: the trailer must have arrived; returns the last, partial batch.
    pub fn finish(mut self) -> Result<Option<RecordBatch>> {
        if self.state != State::Done || !self.pending.is_empty() {
            return Err(self.format_error(format!(
                "the COPY stream ended early ({} bytes of an incomplete tuple, trailer {})",
                self.pending.len(),
                if self.state == State::Done {
                    "seen"
                } else {
                    "missing"
                }
            )));
        }
        if self.builders.first().is_some_and(|b| b.len() > 0) {
            return Ok(Some(self.cut()?));
        }
        Ok(None)
    }

    fn format_error(&self, problem: String) -> ConnectorError {
        ConnectorError::PgDecode {
            table: self.table.clone(),
            column: String::new(),
            row: self.rows,
            problem,
            hint: "the server sent something that is not binary COPY: check the server version and that no proxy rewrites COPY",
        }
    }

    fn cut(&mut self) -> Result<RecordBatch> {
        let arrays = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| {
            ConnectorError::Internal(format!(
                "batch of `{}` does not match its schema: {e}",
                self.table
            ))
        })
    }

    /// Decodes complete units from `buf`; returns the bytes used.
    fn decode(&mut self, buf: &[u8]) -> Result<usize> {
        let mut pos = 0usize;
        if self.state == State::Header {
            if buf.len() < 19 {
                return Ok(0);
            }
            if &buf[..11] != SIGNATURE {
                return Err(self.format_error("missing the PGCOPY signature".into()));
            }
            let flags = be_i32(&buf[11..15]);
            if flags & (1 << 16) != 0 {
                return Err(self.format_error("tuples carry OIDs (flag bit 16)".into()));
            }
            let ext = be_i32(&buf[15..19]);
            if ext < 0 {
                return Err(self.format_error(format!("header extension length {ext}")));
            }
            let end = 19 + ext as usize;
            if buf.len() < end {
                return Ok(0);
            }
            pos = end;
            self.state = State::Tuples;
        }
        let n_cols = self.columns.len();
        while self.state == State::Tuples {
            // Find the end of the next tuple before touching any builder.
            let Some(head) = buf.get(pos..pos + 2) else {
                break;
            };
            let count = be_i16(head);
            if count == -1 {
                pos += 2;
                self.state = State::Done;
                break;
            }
            if count as usize != n_cols || count < 0 {
                return Err(
                    self.format_error(format!("a tuple of {count} fields, expected {n_cols}"))
                );
            }
            let mut p = pos + 2;
            let mut complete = true;
            for _ in 0..n_cols {
                let Some(len) = buf.get(p..p + 4) else {
                    complete = false;
                    break;
                };
                let len = be_i32(len);
                p += 4;
                if len > 0 {
                    p += len as usize;
                }
                if p > buf.len() {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            // Decode it.
            let mut q = pos + 2;
            for i in 0..n_cols {
                let len = be_i32(&buf[q..q + 4]);
                q += 4;
                if len < 0 {
                    self.builders[i].append_null();
                } else {
                    let v = &buf[q..q + len as usize];
                    q += len as usize;
                    if let Err(problem) = self.builders[i].append(v) {
                        return Err(ConnectorError::PgDecode {
                            table: self.table.clone(),
                            column: self.columns[i].name.clone(),
                            row: self.rows + 1,
                            problem: format!("{problem} (declared {})", self.columns[i].declared),
                            hint: "list this column under the table's `text_columns` (an unconstrained numeric: set `numeric_unconstrained: text`) to read it as text",
                        });
                    }
                }
            }
            pos = q;
            self.rows += 1;
            if self
                .builders
                .first()
                .is_some_and(|b| b.len() >= self.batch_rows)
            {
                let batch = self.cut()?;
                self.ready.push(batch);
            }
        }
        if self.state == State::Done && pos < buf.len() {
            return Err(self.format_error(format!("{} bytes after the trailer", buf.len() - pos)));
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Int32Type};

    fn col(name: &str, kind: PgKind) -> PgColumn {
        PgColumn {
            name: name.into(),
            declared: "t".into(),
            kind,
            as_text: false,
            nullable: true,
        }
    }

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_values() {
        // 12345.67 = digits [1, 2345, 6700], weight 1
        let v = numeric(1, 0, 2, &[1, 2345, 6700]);
        assert_eq!(numeric_to_i128(&v, 12, 2), Ok(1_234_567));
        let v = numeric(1, 0x4000, 2, &[1, 2345, 6700]);
        assert_eq!(numeric_to_i128(&v, 12, 2), Ok(-1_234_567));
        // 0.0001 = digits [1], weight -1
        let v = numeric(-1, 0, 4, &[1]);
        assert_eq!(numeric_to_i128(&v, 38, 10), Ok(1_000_000));
        // zero
        assert_eq!(numeric_to_i128(&numeric(0, 0, 0, &[]), 5, 2), Ok(0));
        // 1e20 = digits [1], weight 5
        assert_eq!(
            numeric_to_i128(&numeric(5, 0, 0, &[1]), 38, 10),
            Ok(10i128.pow(30))
        );
        // too many fractional digits for scale 2: 0.001
        assert!(numeric_to_i128(&numeric(-1, 0, 3, &[10]), 12, 2).is_err());
        // 999.99 does not fit precision 4
        assert!(numeric_to_i128(&numeric(0, 0, 2, &[999, 9900]), 4, 2).is_err());
        assert!(numeric_to_i128(&numeric(0, 0xC000, 0, &[]), 10, 2).is_err());
    }

    fn stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SIGNATURE);
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for r in rows {
            out.extend_from_slice(&(r.len() as i16).to_be_bytes());
            for f in r {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn int_array(values: &[Option<i32>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&(values.iter().any(|x| x.is_none()) as i32).to_be_bytes());
        v.extend_from_slice(&23u32.to_be_bytes());
        v.extend_from_slice(&(values.len() as i32).to_be_bytes());
        v.extend_from_slice(&1i32.to_be_bytes());
        for x in values {
            match x {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(x) => {
                    v.extend_from_slice(&4i32.to_be_bytes());
                    v.extend_from_slice(&x.to_be_bytes());
                }
            }
        }
        v
    }

    #[test]
    fn decodes_split_anywhere_into_batches() {
        let columns = vec![
            col("id", PgKind::Int4),
            col(
                "amount",
                PgKind::Numeric {
                    precision: 12,
                    scale: 2,
                },
            ),
            col("doc", PgKind::Jsonb),
            col("id2", PgKind::Uuid),
            col("at", PgKind::Timestamptz),
            col("tags", PgKind::Array(Box::new(PgKind::Int4))),
        ];
        let uuid: Vec<u8> = (0u8..16).collect();
        let mut jsonb = vec![1u8];
        jsonb.extend_from_slice(br#"{"a": 1}"#);
        let rows: Vec<Vec<Option<Vec<u8>>>> = (0..5)
            .map(|i: i32| {
                vec![
                    Some(i.to_be_bytes().to_vec()),
                    if i == 2 {
                        None
                    } else {
                        Some(numeric(1, 0, 2, &[1, 2345, 6700]))
                    },
                    Some(jsonb.clone()),
                    Some(uuid.clone()),
                    Some(0i64.to_be_bytes().to_vec()),
                    if i == 3 {
                        None
                    } else {
                        Some(int_array(&[Some(i), None]))
                    },
                ]
            })
            .collect();
        let bytes = stream(&rows);
        for split in [1usize, 3, 7, 19, 64, bytes.len()] {
            let mut d = CopyDecoder::new("t", &columns, 2).expect("decoder");
            let mut batches = Vec::new();
            for piece in bytes.chunks(split) {
                d.push(piece).expect("push");
                batches.extend(d.take_ready());
            }
            batches.extend(d.finish().expect("finish"));
            assert_eq!(
                batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
                [2, 2, 1]
            );
            let b = &batches[1];
            assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 2);
            assert!(b.column(1).is_null(0));
            assert_eq!(
                b.column(1).as_primitive::<Decimal128Type>().value(1),
                1_234_567
            );
            assert_eq!(b.column(2).as_string::<i32>().value(0), r#"{"a": 1}"#);
            assert_eq!(
                b.column(3).as_string::<i32>().value(0),
                "00010203-0405-0607-0809-0a0b0c0d0e0f"
            );
            assert_eq!(
                b.column(4)
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(0),
                946_684_800_000_000
            );
            let tags = b.column(5).as_list::<i32>();
            assert!(tags.is_null(1));
            let first = tags.value(0);
            let first = first.as_primitive::<Int32Type>();
            assert_eq!((first.value(0), first.is_null(1)), (2, true));
        }
    }

    #[test]
    fn truncated_stream_and_bad_values_are_errors() {
        let columns = vec![col("id", PgKind::Int4)];
        let bytes = stream(&[vec![Some(1i32.to_be_bytes().to_vec())]]);
        let mut d = CopyDecoder::new("t", &columns, 10).expect("decoder");
        d.push(&bytes[..bytes.len() - 3]).expect("push");
        assert!(d.finish().is_err(), "no trailer → error");

        let bad = stream(&[vec![Some(vec![1, 2])]]);
        let mut d = CopyDecoder::new("t", &columns, 10).expect("decoder");
        let err = d.push(&bad).expect_err("2-byte int4");
        assert!(err.to_string().contains("`id`"), "{err}");

        let mut d = CopyDecoder::new("t", &columns, 10).expect("decoder");
        assert!(d.push(b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0").is_err());
    }
}
