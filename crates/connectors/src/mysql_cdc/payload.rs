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

/// Largest decompressed payload read (a bigger transaction is refused with its size).
pub const MAX_PAYLOAD_BYTES: u64 = 1 << 30;

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

/// The events inside the TRANSACTION_PAYLOAD `event`, read with `reader` (whose format
/// description applies). The error says what is wrong.
pub fn inner_events(reader: &mut EventStreamReader, event: &Event) -> Result<Vec<Event>, String> {
    let payload = event
        .read_event::<TransactionPayloadEvent<'_>>()
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
