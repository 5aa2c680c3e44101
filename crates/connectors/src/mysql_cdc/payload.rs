//! TRANSACTION_PAYLOAD events (MySQL 8.0.20+ with `binlog_transaction_compression=ON`): one event
//! whose body is a whole transaction's events, zstd-compressed.
//!
//! Why it matters: a reader that does not open them sees no BEGIN, no rows and no XID for every
//! compressed transaction — silent data loss. [`inner_events`] decompresses one (streaming,
//! bounded by [`MAX_PAYLOAD_BYTES`]) into its events. The archived-file reader feeds those to
//! the decoder; the live reader gets them expanded by its driver too, and checks them against
//! this expansion ([`Fingerprint`]) so that a payload the driver failed to open (it then yields
//! nothing) is an error, not a gap.

use std::io::{BufReader, Read};

use mysql_async::binlog::events::{Event, TransactionPayloadEvent};
use mysql_common::binlog::EventStreamReader;

/// Largest decompressed payload read (a bigger transaction is refused with its size). A
/// transaction is held whole until its commit (a larger one needs the spill the live reader
/// lacks too), so this bounds what one compressed event can make the reader hold; the
/// `mysql_binlog` fuzz target found a 3.6 KB zstd payload that expanded past 2 GiB of memory
/// under the earlier 1 GiB bound.
pub const MAX_PAYLOAD_BYTES: u64 = 256 << 20;

/// What identifies an inner event: its type, the length and the CRC-32 of its body.
pub type Fingerprint = (u8, usize, u32);

/// The fingerprint of `event`.
pub fn fingerprint(event: &Event) -> Fingerprint {
    (
        event.header().event_type_raw(),
        event.data().len(),
        crc32fast::hash(event.data()),
    )
}

/// What the live reader expects after a TRANSACTION_PAYLOAD event: exactly its inner events,
/// which the driver (mysql_async) yields after it. A driver that could not open the payload
/// yields none — the next event is then not the expected one, and [`PayloadCheck::next`] says
/// so instead of letting the transaction vanish.
#[derive(Debug, Default)]
pub struct PayloadCheck {
    expected: std::collections::VecDeque<Fingerprint>,
    at: String,
}

/// What to do with an event after [`PayloadCheck::next`].
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// Not inside a payload, and not a payload event: an ordinary event.
    Outside,
    /// A payload event: its inner events follow (`start`, `end` of the payload event).
    Payload {
        /// Offset of the payload event.
        start: u64,
        /// Offset after it.
        end: u64,
    },
    /// One of the payload's inner events; `last` when it ends the payload.
    Inner {
        /// The payload's last inner event.
        last: bool,
    },
}

impl PayloadCheck {
    /// Classifies the next event of the stream, read in `file`.
    pub fn next(&mut self, event: &Event, file: &str) -> Result<Checked, (String, String)> {
        if let Some(expected) = self.expected.front() {
            if *expected != fingerprint(event) {
                return Err((
                    self.at.clone(),
                    format!(
                        "the compressed transaction (TRANSACTION_PAYLOAD) holds {} more events \
                         than the binlog driver handed out",
                        self.expected.len()
                    ),
                ));
            }
            self.expected.pop_front();
            return Ok(Checked::Inner {
                last: self.expected.is_empty(),
            });
        }
        let header = event.header();
        if header.event_type_raw() != 40 {
            return Ok(Checked::Outside);
        }
        let end = u64::from(header.log_pos());
        let start = end.saturating_sub(u64::from(header.event_size()));
        self.at = format!("{file}:{start}");
        let mut reader =
            EventStreamReader::new(mysql_common::binlog::consts::BinlogVersion::Version4);
        let inner = inner_events(&mut reader, event).map_err(|p| (self.at.clone(), p))?;
        self.expected = inner.iter().map(fingerprint).collect();
        Ok(Checked::Payload { start, end })
    }

    /// True while inner events are expected.
    pub fn inside(&self) -> bool {
        !self.expected.is_empty()
    }
}

/// The events inside the TRANSACTION_PAYLOAD `event`, read with `reader` (whose format
/// description applies). The error says what is wrong.
pub fn inner_events(reader: &mut EventStreamReader, event: &Event) -> Result<Vec<Event>, String> {
    // mysql_common indexes past the end of a damaged payload header (a panic; found by the
    // `mysql_binlog` fuzz target).
    let payload = super::decode_guard::no_panic("a TRANSACTION_PAYLOAD header", || {
        event.read_event::<TransactionPayloadEvent<'_>>()
    })?
    .map_err(|e| format!("TRANSACTION_PAYLOAD header: {e}"))?;
    if payload.uncompressed_size() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "a compressed transaction of {} bytes is over the {MAX_PAYLOAD_BYTES}-byte bound",
            payload.uncompressed_size()
        ));
    }
    let body = payload
        .decompressed()
        .map_err(|e| format!("TRANSACTION_PAYLOAD body: {e}"))?;
    // One byte over the bound shows the declared size lied.
    let mut body = BufReader::new(body.take(MAX_PAYLOAD_BYTES + 1));
    let mut events = Vec::new();
    let mut read: u64 = 0;
    loop {
        let next = super::decode_guard::no_panic("inside a TRANSACTION_PAYLOAD", || {
            reader.read_decompressed(&mut body)
        })?;
        match next {
            Ok(Some(inner)) => {
                read = read.saturating_add(inner.header().event_size() as u64);
                if read > MAX_PAYLOAD_BYTES {
                    return Err(format!(
                        "a compressed transaction over the {MAX_PAYLOAD_BYTES}-byte bound"
                    ));
                }
                events.push(inner);
            }
            Ok(None) => break,
            Err(e) => return Err(format!("inside a TRANSACTION_PAYLOAD: {e}")),
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload event of the MySQL 8.0.32 fixture, and the events after it.
    fn fixture_events() -> Vec<Event> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mysql-binlogs/transaction_compression.000001"
        );
        let file = std::fs::File::open(path).expect("fixture");
        let events = mysql_common::binlog::BinlogFile::new(
            mysql_common::binlog::consts::BinlogVersion::Version4,
            std::io::BufReader::new(file),
        )
        .expect("binlog");
        events.map(|e| e.expect("event")).collect()
    }

    #[test]
    fn the_driver_expansion_is_checked_event_by_event() {
        let events = fixture_events();
        let payload = events
            .iter()
            .find(|e| e.header().event_type_raw() == 40)
            .expect("a payload");
        let mut reader =
            EventStreamReader::new(mysql_common::binlog::consts::BinlogVersion::Version4);
        let inner = inner_events(&mut reader, payload).expect("opened");
        let types: Vec<u8> = inner.iter().map(|e| e.header().event_type_raw()).collect();
        assert_eq!(types, [2, 19, 30, 16], "BEGIN, TABLE_MAP, WRITE_ROWS, XID");

        // As the driver yields them: the payload, then its events.
        let mut check = PayloadCheck::default();
        assert_eq!(
            check.next(payload, "binlog.000042").unwrap(),
            Checked::Payload {
                start: 274,
                end: 431
            }
        );
        for (i, e) in inner.iter().enumerate() {
            let last = i + 1 == inner.len();
            assert_eq!(
                check.next(e, "binlog.000042").unwrap(),
                Checked::Inner { last }
            );
        }
        let rotate = events.last().expect("rotate");
        assert_eq!(
            check.next(rotate, "binlog.000042").unwrap(),
            Checked::Outside
        );

        // A driver that could not open the payload goes on with the next event: refused.
        let mut check = PayloadCheck::default();
        check.next(payload, "binlog.000042").unwrap();
        let (at, problem) = check.next(rotate, "binlog.000042").unwrap_err();
        assert_eq!(at, "binlog.000042:274");
        assert!(problem.contains("4 more events"), "{problem}");
    }
}
