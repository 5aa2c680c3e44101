//! A check of an Arrow IPC stream's framing before arrow-ipc reads it.
//!
//! Step states are Arrow IPC streams, and a state file can be corrupt (a torn write, a disk
//! error) or foreign. arrow-ipc 58 trusts the framing: a message's `bodyLength` is allocated
//! as given (a flipped bit asks for exabytes and panics on the layout), and a buffer whose
//! offset or length runs past the body panics in `slice_with_length`; a compressed buffer
//! allocates the uncompressed size it declares. This walk verifies every message header (the
//! flatbuffer verifier), and checks that each body lies within the bytes, each buffer within its
//! body, and that nothing is compressed (Strata never writes compressed states), so the reader
//! only ever sees framing it can handle.
//!
//! That is not enough on its own: arrow-ipc also panics when a null bitmap is shorter than its
//! array. So states are sealed: [`seal`] prefixes the IPC bytes with a magic, a version and a
//! CRC-32 of the bytes, and [`open`] checks them before anything is decoded; a torn or
//! bit-flipped state is then an error naming the checksum. States written before the seal
//! (bare IPC) are still read, through the framing check alone.

use arrow::ipc::{MessageHeader, root_as_message};

/// The first bytes of a sealed step state.
const SEAL_MAGIC: &[u8; 4] = b"STS1";

/// `ipc` with its seal: magic, CRC-32 (little endian), then the bytes.
pub(crate) fn seal(ipc: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(ipc.len() + 8);
    out.extend_from_slice(SEAL_MAGIC);
    out.extend_from_slice(&crc32fast::hash(&ipc).to_le_bytes());
    out.extend_from_slice(&ipc);
    out
}

/// The IPC bytes of a sealed state whose checksum matches (or of a bare, pre-seal state whose
/// framing passes [`check_stream`]).
pub(crate) fn open(state: &[u8]) -> Result<&[u8], String> {
    let Some(rest) = state.strip_prefix(SEAL_MAGIC) else {
        if state.starts_with(&[0xFF, 0xFF, 0xFF, 0xFF]) {
            check_stream(state)?;
            return Ok(state);
        }
        return Err("not a Strata step state (unknown format or version)".into());
    };
    let (crc, ipc) = rest
        .split_first_chunk::<4>()
        .ok_or("a torn state: shorter than its checksum")?;
    let (want, got) = (u32::from_le_bytes(*crc), crc32fast::hash(ipc));
    if want != got {
        return Err(format!(
            "the state is corrupt: its CRC-32 is {got:08x}, {want:08x} was written (a torn or \
             damaged file)"
        ));
    }
    check_stream(ipc)?;
    Ok(ipc)
}

/// Checks the framing of the IPC stream `bytes`; the error says what is wrong and where.
pub(crate) fn check_stream(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    loop {
        let word = |at: usize| -> Option<u32> {
            let b = bytes.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let Some(mut len) = word(at) else {
            // A stream may end without the end-of-stream marker.
            return if at == bytes.len() {
                Ok(())
            } else {
                Err(format!("a torn message header at byte {at}"))
            };
        };
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at).ok_or_else(|| format!("a torn message length at byte {at}"))?;
            at += 4;
        }
        if len == 0 {
            return Ok(());
        }
        let len = len as usize;
        let meta = at
            .checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| format!("a message of {len} bytes at byte {at} runs past the end"))?;
        let message = root_as_message(meta)
            .map_err(|e| format!("a corrupt message header at byte {at}: {e}"))?;
        at += len;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .filter(|b| at.checked_add(*b).is_some_and(|end| end <= bytes.len()))
            .ok_or_else(|| {
                format!(
                    "a message body of {} bytes at byte {at} runs past the end ({} left)",
                    message.bodyLength(),
                    bytes.len() - at
                )
            })?;
        let batch = match message.header_type() {
            MessageHeader::RecordBatch => message.header_as_record_batch(),
            MessageHeader::DictionaryBatch => {
                message.header_as_dictionary_batch().and_then(|d| d.data())
            }
            _ => None,
        };
        if let Some(batch) = batch {
            if batch.compression().is_some() {
                return Err(format!("a compressed record batch at byte {at}"));
            }
            for buffer in batch.buffers().into_iter().flatten() {
                let fits = usize::try_from(buffer.offset())
                    .ok()
                    .zip(usize::try_from(buffer.length()).ok())
                    .and_then(|(o, l)| o.checked_add(l))
                    .is_some_and(|end| end <= body);
                if !fits {
                    return Err(format!(
                        "a buffer at offset {} of {} bytes lies outside its {body}-byte body \
                         at byte {at}",
                        buffer.offset(),
                        buffer.length()
                    ));
                }
            }
        }
        at += body;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    fn stream() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("x"), None, Some("yz")])),
            ],
        )
        .expect("batch");
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &schema).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
        drop(w);
        out
    }

    #[test]
    fn a_stream_arrow_wrote_passes_and_its_truncations_do_not() {
        let bytes = stream();
        assert_eq!(check_stream(&bytes), Ok(()));
        let torn = (1..bytes.len() - 8)
            .filter(|cut| check_stream(&bytes[..*cut]).is_ok())
            .count();
        // Only cuts at a message boundary pass (then the reader sees a shorter stream).
        assert!(torn <= 2, "{torn} truncations passed");
    }

    #[test]
    fn a_body_length_past_the_end_is_refused() {
        let bytes = stream();
        // Flip the high bits of every byte in turn: each result passes or is refused, no panic,
        // and a body length made huge is named.
        let mut refused_body = 0;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xF0;
            if let Err(e) = check_stream(&b)
                && e.contains("body")
            {
                refused_body += 1;
            }
        }
        assert!(refused_body > 0);
    }
}
