//! Reading a run's audit log: line by line from the backend's chunks, so memory stays
//! bounded however long the log grows, and every line that is not an audit line is counted
//! and said, never silently dropped.
//!
//! Two kinds of unreadable line are told apart:
//! - **torn**: a line cut short (its JSON ends early). A writer killed mid-append (or out of
//!   disk) leaves one as the log's last line; a later invocation's first batch then starts on
//!   a line of its own, so a torn line can also sit in the middle. Expected after a crash:
//!   logged at info level.
//! - **corrupt**: anything else (not JSON, not an audit line, longer than [`MAX_LINE`]).
//!   Nothing the handler writes looks like that: a warning.

use super::records::AuditLine;

/// The longest audit line read (an audit line is well under a kilobyte; a manifest's tag
/// list makes it longer, not a megabyte). A longer line is corrupt, and skipped without
/// being held.
pub const MAX_LINE: usize = 1024 * 1024;

/// How many line numbers of each kind a reading keeps, for messages.
const NOTED: usize = 10;

/// What reading an audit log found besides its lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReading {
    /// Audit lines read.
    pub lines: u64,
    /// Torn lines (cut short by a writer that died), left out.
    pub torn: u64,
    /// Corrupt lines, left out.
    pub corrupt: u64,
    /// The first line numbers (1-based) of torn lines.
    pub torn_at: Vec<u64>,
    /// The first line numbers (1-based) of corrupt lines.
    pub corrupt_at: Vec<u64>,
}

impl AuditReading {
    /// Takes line `number` (`None`: longer than [`MAX_LINE`]); `last`: the log ends without a
    /// newline after it.
    pub(super) fn take(
        &mut self,
        number: u64,
        line: Option<&[u8]>,
        last: bool,
    ) -> Option<AuditLine> {
        let Some(line) = line else {
            self.note_corrupt(number);
            return None;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match serde_json::from_slice::<AuditLine>(line) {
            Ok(parsed) => {
                self.lines += 1;
                Some(parsed)
            }
            Err(e) if e.is_eof() || last => {
                self.torn += 1;
                if self.torn_at.len() < NOTED {
                    self.torn_at.push(number);
                }
                None
            }
            Err(_) => {
                self.note_corrupt(number);
                None
            }
        }
    }

    fn note_corrupt(&mut self, number: u64) {
        self.corrupt += 1;
        if self.corrupt_at.len() < NOTED {
            self.corrupt_at.push(number);
        }
    }

    /// What was left out, for a person (`None`: nothing was).
    pub fn left_out(&self) -> Option<String> {
        let list = |at: &[u64], all: u64| {
            let numbers: Vec<String> = at.iter().map(u64::to_string).collect();
            let more = if all > at.len() as u64 { ", …" } else { "" };
            format!("line {}{more}", numbers.join(", "))
        };
        let mut parts = Vec::new();
        if self.corrupt > 0 {
            parts.push(format!(
                "{} corrupt line(s) ({}), not written by the handler",
                self.corrupt,
                list(&self.corrupt_at, self.corrupt)
            ));
        }
        if self.torn > 0 {
            parts.push(format!(
                "{} line(s) cut short by a writer that died ({})",
                self.torn,
                list(&self.torn_at, self.torn)
            ));
        }
        (!parts.is_empty()).then(|| format!("left out {}", parts.join(" and ")))
    }
}

/// Splits chunks into lines, holding at most one line (of at most [`MAX_LINE`] bytes): for
/// every object the store reads line by line (the audit log, the remembered blobs).
#[derive(Default)]
pub(super) struct Splitter {
    partial: Vec<u8>,
    number: u64,
    overlong: bool,
}

impl Splitter {
    /// Feeds a chunk; `each` hears every complete line: its number (from 1) and its bytes
    /// (`None`: longer than [`MAX_LINE`]), and `false` (not the object's unended last line).
    pub(super) fn feed(
        &mut self,
        mut chunk: &[u8],
        each: &mut impl FnMut(u64, Option<&[u8]>, bool),
    ) {
        while let Some(end) = chunk.iter().position(|b| *b == b'\n') {
            self.push(&chunk[..end]);
            self.number += 1;
            each(
                self.number,
                (!self.overlong).then_some(self.partial.as_slice()),
                false,
            );
            self.partial.clear();
            self.overlong = false;
            chunk = &chunk[end + 1..];
        }
        self.push(chunk);
    }

    /// Ends the object: a last line without a newline is heard too, with `true`.
    pub(super) fn finish(self, each: &mut impl FnMut(u64, Option<&[u8]>, bool)) {
        if self.partial.is_empty() && !self.overlong {
            return;
        }
        let line = (!self.overlong).then_some(self.partial.as_slice());
        each(self.number + 1, line, true);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}
