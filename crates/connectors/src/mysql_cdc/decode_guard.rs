//! A guard around mysql_common's binlog parsing of bytes from outside (archived files, and the
//! events inside compressed payloads).
//!
//! Why: mysql_common 0.37 panics on some malformed input instead of returning an error — an
//! event cut short (`read_exact(..).unwrap()`), an event shorter than its checksum (a slice
//! out of range). A damaged backup must give an error naming the file and offset, never a
//! crash, so every call into its parser from these readers runs under [`no_panic`] (the
//! workspace keeps the default `panic = "unwind"`), and events are framed by their header
//! before parsing ([`frame`]) so that a cut one is found without asking the parser.

use std::io::{BufRead, Read};

/// The binlog event header's length.
pub const HEADER_LEN: usize = 19;
/// The largest event accepted (MySQL's `max_allowed_packet` ceiling).
pub const MAX_EVENT_BYTES: u32 = 1 << 30;

pub use crate::no_panic::no_panic;

/// Checks the counts an event's body declares against the bytes it has, for the event types
/// whose mysql_common parser reserves memory by a count from the bytes (a few bytes asking for
/// terabytes abort the process: an allocation failure is not a panic). Found by the
/// `mysql_binlog` fuzz target: PREVIOUS_GTIDS' SID and interval counts.
pub fn check_counts(event_type: u8, data: &[u8]) -> Result<(), String> {
    if event_type != 35 {
        return Ok(());
    }
    let too_many = |what: &str, n: u64, left: usize| {
        format!("PREVIOUS_GTIDS declares {n} {what} in {left} bytes")
    };
    let Some(head) = data.get(..8) else {
        return Ok(()); // too short: the parser refuses it
    };
    let header = u64::from_le_bytes(head.try_into().unwrap_or([0; 8]));
    let tagged = header >> 56 != 0;
    let n_sids = if tagged {
        (header >> 8) & ((1 << 48) - 1)
    } else {
        header & ((1 << 56) - 1)
    };
    let mut buf = mysql_common::io::ParseBuf(&data[8..]);
    // Each SID takes at least its uuid and its interval count.
    if n_sids > (buf.len() / 24) as u64 {
        return Err(too_many("SIDs", n_sids, buf.len()));
    }
    for _ in 0..n_sids {
        if buf.len() < 16 {
            return Ok(());
        }
        buf.0 = &buf.0[16..];
        if tagged {
            let Ok(tag_len) = mysql_common::misc::read_varlen_uint(&mut buf) else {
                return Ok(());
            };
            if tag_len > buf.len() as u64 {
                return Ok(());
            }
            buf.0 = &buf.0[tag_len as usize..];
        }
        let Some(n) = buf.0.get(..8) else {
            return Ok(());
        };
        let n_intervals = u64::from_le_bytes(n.try_into().unwrap_or([0; 8]));
        buf.0 = &buf.0[8..];
        if n_intervals > (buf.len() / 16) as u64 {
            return Err(too_many("GTID intervals", n_intervals, buf.len()));
        }
        buf.0 = &buf.0[n_intervals as usize * 16..];
    }
    Ok(())
}

/// How reading one framed event ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// A whole event (header included).
    Event(Vec<u8>),
    /// The input ended cleanly, between events.
    End,
    /// The input ended inside an event.
    Cut,
    /// The header is not a binlog event's.
    Bad(String),
}

/// Reads one whole event from `input`, by the size its header gives.
pub fn frame(input: &mut impl BufRead) -> std::io::Result<Framed> {
    if input.fill_buf()?.is_empty() {
        return Ok(Framed::End);
    }
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = input.read(&mut header[got..])?;
        if n == 0 {
            return Ok(Framed::Cut);
        }
        got += n;
    }
    let size = u32::from_le_bytes([header[9], header[10], header[11], header[12]]);
    if (size as usize) < HEADER_LEN || size > MAX_EVENT_BYTES {
        return Ok(Framed::Bad(format!(
            "an event header gives a size of {size} bytes (a binlog event has {HEADER_LEN} to \
             {MAX_EVENT_BYTES})"
        )));
    }
    let mut event = Vec::with_capacity(size as usize);
    event.extend_from_slice(&header);
    let rest = size as u64 - HEADER_LEN as u64;
    let read = input.take(rest).read_to_end(&mut event)?;
    if (read as u64) < rest {
        return Ok(Framed::Cut);
    }
    Ok(Framed::Event(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(size: u32) -> Vec<u8> {
        let mut e = vec![0u8; (size as usize).max(HEADER_LEN)];
        e[9..13].copy_from_slice(&size.to_le_bytes());
        e
    }

    #[test]
    fn frames_whole_events_and_names_cut_or_bad_ones() {
        let mut two = event(30);
        two.extend(event(19));
        let mut input = &two[..];
        assert_eq!(frame(&mut input).unwrap(), Framed::Event(event(30)));
        assert_eq!(frame(&mut input).unwrap(), Framed::Event(event(19)));
        assert_eq!(frame(&mut input).unwrap(), Framed::End);
        assert_eq!(frame(&mut &event(30)[..25]).unwrap(), Framed::Cut);
        assert_eq!(frame(&mut &event(30)[..10]).unwrap(), Framed::Cut);
        assert!(matches!(frame(&mut &event(5)[..]).unwrap(), Framed::Bad(_)));
        let mut huge = event(19);
        huge[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(frame(&mut &huge[..]).unwrap(), Framed::Bad(_)));
    }

    #[test]
    fn previous_gtids_counts_beyond_the_bytes_are_refused() {
        // The fuzz finding: one SID claiming 2^43 intervals (a 140 TB reservation).
        let mut d = 1u64.to_le_bytes().to_vec();
        d.extend([7u8; 16]);
        d.extend((1u64 << 43).to_le_bytes());
        d.extend([0u8; 16]);
        assert!(check_counts(35, &d).unwrap_err().contains("intervals"));
        let mut sids = (1u64 << 40).to_le_bytes().to_vec();
        sids.extend([0u8; 40]);
        assert!(check_counts(35, &sids).unwrap_err().contains("SIDs"));
        // A well-formed one passes: one SID, one interval.
        let mut ok = 1u64.to_le_bytes().to_vec();
        ok.extend([7u8; 16]);
        ok.extend(1u64.to_le_bytes());
        ok.extend(1u64.to_le_bytes());
        ok.extend(6u64.to_le_bytes());
        assert!(check_counts(35, &ok).is_ok());
        assert!(
            check_counts(2, &d).is_ok(),
            "other events are not checked here"
        );
    }

    #[test]
    fn a_panic_becomes_an_error() {
        let e = no_panic("event at f:4", || -> u8 { panic!("boom") }).unwrap_err();
        assert!(e.contains("f:4") && e.contains("boom"), "{e}");
        assert_eq!(no_panic("x", || 7).unwrap(), 7);
    }
}
