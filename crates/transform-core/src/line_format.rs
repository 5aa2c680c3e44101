//! The one NDJSON line decoder: how a byte stream of newline-delimited records becomes
//! `_raw` + lineage batches, shared by every reader (local files, bronze objects, S3).
//!
//! The readers differ only in I/O (sync file, async object store); everything that decides what
//! a record *is* lives here, so the same file gives the same `_raw` under `transform` and under
//! `batch`:
//! - compression is recognised from the first bytes (magic numbers), never from the name;
//! - a record ends at `\n`; one `\r` before it is part of the line ending (CRLF files), any other
//!   byte is kept;
//! - blank lines are records (the pipeline quarantines them), so nothing disappears silently;
//! - batches are bounded by a record count and a byte budget.

use arrow::array::RecordBatch;

/// How a line stream is compressed, recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip, multi-member streams included.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Detects compression from the first bytes (magic numbers), so a misnamed file still reads.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }

    /// `plain`, `gzip` or `zstd` (for errors and logs).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// True when the first bytes are Parquet's magic (`PAR1`).
pub fn is_parquet_magic(head: &[u8]) -> bool {
    head.starts_with(b"PAR1")
}

/// Removes the line ending of one line as returned by `read_until(b'\n')`: the `\n`, and one
/// `\r` before it. A lone `\r` elsewhere, or at the end of a last line without `\n`, is data.
pub fn trim_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Collects the lines of one batch and turns them into a [`crate::lineage::file_input_schema`]
/// batch with 1-based line numbers.
#[derive(Debug)]
pub struct LineBatcher {
    max_rows: usize,
    max_bytes: usize,
    next_line: u64,
    first_line: u64,
    bytes: usize,
    records: Vec<Vec<u8>>,
}

impl LineBatcher {
    /// Batches of at most `max_rows` records, closed once their bytes reach `max_bytes` (a single
    /// larger record still makes its own batch). Both bounds are at least 1.
    pub fn new(max_rows: usize, max_bytes: usize) -> Self {
        LineBatcher {
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
            next_line: 1,
            first_line: 1,
            bytes: 0,
            records: Vec::new(),
        }
    }

    /// Adds one line as read, line ending included (it is trimmed here).
    pub fn push(&mut self, mut line: Vec<u8>) {
        trim_line_end(&mut line);
        self.bytes = self.bytes.saturating_add(line.len());
        self.records.push(line);
        self.next_line += 1;
    }

    /// True once the batch has reached a bound: stop reading and call [`Self::take`].
    pub fn is_full(&self) -> bool {
        self.records.len() >= self.max_rows || self.bytes >= self.max_bytes
    }

    /// The line number the next pushed line gets (lines delivered so far + 1, pending included).
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    /// Lines handed out in batches so far.
    pub fn lines_delivered(&self) -> u64 {
        self.first_line - 1
    }

    /// The pending lines as a batch (`None` when there are none), with `_source`, `_file` and
    /// `_ingested_at` set as given.
    pub fn take(
        &mut self,
        source: &str,
        file: &str,
        ingested_at_micros: i64,
    ) -> crate::Result<Option<RecordBatch>> {
        if self.records.is_empty() {
            return Ok(None);
        }
        let batch = crate::lineage::file_batch(
            &self.records,
            source,
            file,
            self.first_line,
            ingested_at_micros,
        )?;
        self.records.clear();
        self.bytes = 0;
        self.first_line = self.next_line;
        Ok(Some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, BinaryArray, UInt64Array};

    #[test]
    fn crlf_and_lf_give_the_same_records_and_lone_cr_is_data() {
        let mut b = LineBatcher::new(100, 1 << 20);
        for line in [&b"{\"a\":1}\r\n"[..], b"\r\n", b"x\ry\n", b"last\r"] {
            b.push(line.to_vec());
        }
        let batch = b.take("s", "f", 0).unwrap().unwrap();
        let raw = batch
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        let got: Vec<&[u8]> = (0..raw.len()).map(|i| raw.value(i)).collect();
        assert_eq!(got, vec![&b"{\"a\":1}"[..], b"", b"x\ry", b"last\r"]);
    }

    #[test]
    fn bounds_close_batches_and_line_numbers_continue() {
        let mut b = LineBatcher::new(2, 1 << 20);
        let mut batches = Vec::new();
        for i in 0..5 {
            b.push(format!("{i}\n").into_bytes());
            if b.is_full() {
                batches.push(b.take("s", "f", 0).unwrap().unwrap());
            }
        }
        batches.extend(b.take("s", "f", 0).unwrap());
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        let lines = batches[2]
            .column_by_name("_line")
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .value(0);
        assert_eq!(lines, 5);
        assert_eq!(b.lines_delivered(), 5);
        let mut small = LineBatcher::new(100, 3);
        small.push(b"abcd\n".to_vec());
        assert!(small.is_full());
    }

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"{\"a\""), Compression::None);
        assert!(is_parquet_magic(b"PAR1...."));
    }
}
