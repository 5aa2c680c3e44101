//! The checkpoint envelope: the state of every stateful step, each tagged with a fingerprint of
//! that step's spec, so a state is only ever restored into the step configuration that wrote it —
//! while the rest of the pipeline may evolve (a new column, a widened type) without losing the
//! dedup keys seen so far.
//!
//! Layout (little endian): magic `STRATACK`, u32 version, 64-byte hex pipeline fingerprint
//! (diagnostics), u32 entry count, then per entry: u32 name length, name, 64-byte hex step
//! fingerprint, u64 state length, state bytes; version 3 ends with a CRC-32 of everything
//! before it, so a torn or damaged checkpoint is refused before any state is read (version 2,
//! without it, is still read).

use crate::error::{CoreError, Result};

const MAGIC: &[u8; 8] = b"STRATACK";
const VERSION: u32 = 3;
/// The last version without the trailing checksum (still read).
const VERSION_UNCHECKED: u32 = 2;

/// Step states of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub fingerprint: String,
    /// (step name, step fingerprint, state).
    pub entries: Vec<(String, String, Vec<u8>)>,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(self.fingerprint.as_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (name, step_fingerprint, state) in &self.entries {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(step_fingerprint.as_bytes());
            out.extend_from_slice(&(state.len() as u64).to_le_bytes());
            out.extend_from_slice(state);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(bad("not a Strata checkpoint (bad magic)"));
        }
        let version = u32::from_le_bytes(r.array()?);
        let bytes = match version {
            VERSION => {
                let (body, crc) = bytes
                    .split_last_chunk::<4>()
                    .ok_or_else(|| bad("truncated"))?;
                let (want, got) = (u32::from_le_bytes(*crc), crc32fast::hash(body));
                if want != got {
                    return Err(bad(&format!(
                        "the checkpoint is corrupt: its CRC-32 is {got:08x}, {want:08x} was \
                         written (a torn or damaged file)"
                    )));
                }
                body
            }
            VERSION_UNCHECKED => bytes,
            _ => {
                return Err(bad(&format!(
                    "checkpoint version {version} is not supported (expected {VERSION})"
                )));
            }
        };
        let mut r = Reader { bytes, pos: r.pos };
        let fingerprint =
            String::from_utf8(r.take(64)?.to_vec()).map_err(|_| bad("corrupt fingerprint"))?;
        let n = u32::from_le_bytes(r.array()?) as usize;
        let mut entries = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let len = u32::from_le_bytes(r.array()?) as usize;
            let name =
                String::from_utf8(r.take(len)?.to_vec()).map_err(|_| bad("corrupt step name"))?;
            let step_fingerprint = String::from_utf8(r.take(64)?.to_vec())
                .map_err(|_| bad("corrupt step fingerprint"))?;
            let len = u64::from_le_bytes(r.array()?) as usize;
            entries.push((name, step_fingerprint, r.take(len)?.to_vec()));
        }
        if r.pos != bytes.len() {
            return Err(bad("trailing bytes after the last entry"));
        }
        Ok(Envelope {
            fingerprint,
            entries,
        })
    }
}

fn bad(problem: &str) -> CoreError {
    CoreError::Checkpoint {
        problem: problem.to_string(),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| bad("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::vec(("[a-z_]{1,12}", "[0-9a-f]{64}", proptest::collection::vec(any::<u8>(), 0..64)), 0..5)) {
            let e = Envelope { fingerprint: "f".repeat(64), entries };
            prop_assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn any_flipped_byte_is_refused(flip in 0usize..10_000, bit in 0u8..8) {
            let e = Envelope {
                fingerprint: "f".repeat(64),
                entries: vec![("dedup".into(), "a".repeat(64), vec![1, 2, 3, 4, 5])],
            };
            let mut bytes = e.encode();
            let at = flip % bytes.len();
            bytes[at] ^= 1 << bit;
            prop_assert!(Envelope::decode(&bytes).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::decode(&bytes);
        }
    }
}
