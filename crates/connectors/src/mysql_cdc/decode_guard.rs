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
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The binlog event header's length.
pub const HEADER_LEN: usize = 19;
/// The largest event accepted (MySQL's `max_allowed_packet` ceiling).
pub const MAX_EVENT_BYTES: u32 = 1 << 30;

/// Runs `f`, turning a panic of the parser into an error naming `what`.
pub fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a malformed event");
        format!("{what}: the parser failed on malformed bytes ({why})")
    })
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
    fn a_panic_becomes_an_error() {
        let e = no_panic("event at f:4", || -> u8 { panic!("boom") }).unwrap_err();
        assert!(e.contains("f:4") && e.contains("boom"), "{e}");
        assert_eq!(no_panic("x", || 7).unwrap(), 7);
    }
}
