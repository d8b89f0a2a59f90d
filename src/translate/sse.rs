//! Incremental Server-Sent Events splitter.
//!
//! Bytes arrive in arbitrary chunks; [`SseSplitter`] buffers partial lines and
//! yields only complete events (terminated by a blank line). Lines may end in
//! `\n` or `\r\n`; multi-line `data:` fields are joined with `\n`; comment lines
//! (starting with `:`) are skipped. Each event also carries its raw bytes so a
//! pass-through translator can forward it byte-identically.

/// Default cap on the size of one event (including its partial line), so a
/// misbehaving upstream that never sends a newline cannot grow memory forever.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One complete SSE event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// All `data:` lines joined with `\n`.
    pub data: String,
    /// The exact bytes of the event block, including its terminating blank line.
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE event larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Splits a byte stream into SSE events.
#[derive(Debug)]
pub struct SseSplitter {
    /// Bytes of the current, not yet newline-terminated line.
    buf: Vec<u8>,
    /// Prefix of `buf` already known to contain no `\n` (avoids rescans).
    scanned: usize,
    /// Raw bytes of the complete lines of the current event.
    raw: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    at_start: bool,
    limit: usize,
}

impl Default for SseSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl SseSplitter {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            raw: Vec::new(),
            event: None,
            data: String::new(),
            has_data: false,
            at_start: true,
            limit,
        }
    }

    /// Feed one chunk; complete events are appended to `events`.
    pub fn feed(&mut self, chunk: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.buf.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.buf);
        let mut start = 0;
        let mut search = self.scanned;
        let mut result = Ok(());
        while let Some(off) = buf
            .get(search..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            let end = search + off + 1;
            if let Some(line) = buf.get(start..end) {
                result = self.line(line, events);
            }
            start = end;
            search = end;
            if result.is_err() {
                break;
            }
        }
        let mut rest = buf;
        rest.drain(..start.min(rest.len()));
        self.scanned = rest.len();
        self.buf = rest;
        result?;
        if self.raw.len().saturating_add(self.buf.len()) > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// End of input: an unterminated trailing event that has data is still
    /// dispatched (with a synthesized terminator) rather than silently lost.
    pub fn finish(&mut self, events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.buf.is_empty() {
            self.feed(b"\n", events)?;
        }
        if self.has_data {
            self.feed(b"\n", events)?;
        }
        Ok(())
    }

    fn line(&mut self, raw_line: &[u8], events: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.raw.len().saturating_add(raw_line.len()) > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        self.raw.extend_from_slice(raw_line);
        let mut text = raw_line.strip_suffix(b"\n").unwrap_or(raw_line);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        if self.at_start {
            self.at_start = false;
            text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
        }
        if text.is_empty() {
            self.dispatch(events);
            return Ok(());
        }
        if text.first() == Some(&b':') {
            return Ok(());
        }
        let (field, value) = match text.iter().position(|&b| b == b':') {
            Some(i) => {
                let (field, rest) = text.split_at(i);
                let value = rest.get(1..).unwrap_or_default();
                (field, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (text, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        if self.has_data {
            events.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                raw: std::mem::take(&mut self.raw),
            });
        } else {
            self.raw.clear();
            self.event = None;
            self.data.clear();
        }
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut s = SseSplitter::new();
        let mut ev = Vec::new();
        for c in chunks {
            s.feed(c, &mut ev).unwrap();
        }
        s.finish(&mut ev).unwrap();
        ev
    }

    #[test]
    fn basic_events_and_line_endings() {
        let input = b"event: a\r\ndata: one\r\n\r\n: comment\n\ndata: x\ndata:y\n\n";
        let ev = split_all(&[input]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].event.as_deref(), Some("a"));
        assert_eq!(ev[0].data, "one");
        assert_eq!(ev[0].raw, b"event: a\r\ndata: one\r\n\r\n");
        assert_eq!(ev[1].event, None);
        assert_eq!(ev[1].data, "x\ny");
        assert_eq!(ev[1].raw, b"data: x\ndata:y\n\n");
    }

    #[test]
    fn every_split_is_identical() {
        let input: &[u8] =
            "\u{feff}event: e\r\ndata: {\"a\":\"é\"}\r\n\r\n:ping\n\nevent: only\n\ndata: [DONE]\n\n"
                .as_bytes();
        let whole = split_all(&[input]);
        assert_eq!(whole.len(), 2);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(split_all(&[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(split_all(&bytes), whole);
    }

    #[test]
    fn unterminated_trailing_event_is_flushed() {
        let ev = split_all(&[b"data: [DONE]"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "[DONE]");
        assert_eq!(ev[0].raw, b"data: [DONE]\n\n");
        let ev = split_all(&[b"data: [DONE]\r\n"]);
        assert_eq!(ev[0].raw, b"data: [DONE]\r\n\n");
    }

    #[test]
    fn empty_data_field_still_dispatches() {
        let ev = split_all(&[b"data:\n\nevent: x\n\n"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "");
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut s = SseSplitter::with_limit(8);
        let mut ev = Vec::new();
        assert!(s.feed(b"data: 0123456789", &mut ev).is_err());
        let mut s = SseSplitter::with_limit(8);
        assert!(s.feed(b"data: 0123456789\n\n", &mut ev).is_err());
        let mut s = SseSplitter::with_limit(64);
        assert!(s.feed(b"data: 0123456789\n\n", &mut ev).is_ok());
    }
}
