//! The `data` of server-sent events, read from a byte stream as it arrives.
//!
//! An OpenAI-compatible stream is a series of `data: {json}` events; only their data matters
//! here. The decoder follows the event-stream format of the HTML standard for what it reads:
//! lines end in LF, CRLF or CR (also split across reads), `data` lines of one event join with
//! LF, a single space after the colon is dropped, comments and other fields are skipped, and an
//! event is dispatched at the blank line that ends it — one reused buffer, no copy per field.

/// Splits bytes into events; keeps the unfinished line and event between reads.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// The line read so far (without its end).
    line: Vec<u8>,
    /// The data of the event read so far.
    data: String,
    /// The event has a `data` field (possibly empty).
    has_data: bool,
    /// The last byte read was a CR: an LF right after it ends nothing more.
    after_cr: bool,
}

impl SseDecoder {
    /// Reads more of the stream; `on_data` gets the data of every event it completes.
    pub fn feed(&mut self, mut bytes: &[u8], mut on_data: impl FnMut(&str)) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) {
            let (line, rest) = bytes.split_at(end);
            let crlf = rest.starts_with(b"\r\n");
            self.after_cr = rest[0] == b'\r' && rest.len() == 1;
            bytes = &rest[if crlf { 2 } else { 1 }..];
            if self.line.is_empty() {
                self.end_line(line, &mut on_data);
            } else {
                let mut whole = std::mem::take(&mut self.line);
                whole.extend_from_slice(line);
                self.end_line(&whole, &mut on_data);
                whole.clear();
                self.line = whole;
            }
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, line: &[u8], on_data: &mut impl FnMut(&str)) {
        if line.is_empty() {
            if self.has_data {
                on_data(&self.data);
            }
            self.data.clear();
            self.has_data = false;
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return, // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            return;
        }
        if self.has_data {
            self.data.push('\n');
        }
        self.has_data = true;
        match std::str::from_utf8(value) {
            Ok(text) => self.data.push_str(text),
            Err(_) => self.data.push_str(&String::from_utf8_lossy(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(reads: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for read in reads {
            decoder.feed(read, |data| out.push(data.to_string()));
        }
        out
    }

    #[test]
    fn reads_data_of_events_split_anywhere() {
        let stream = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\nid: 7\ndata: [DONE]\n\n";
        let whole = events(&[stream]);
        assert_eq!(whole, ["{\"a\":1}", "[DONE]"]);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(events(&[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytes), whole);
    }

    #[test]
    fn follows_the_line_and_field_rules() {
        // CRLF and lone CR line ends, the CR of a CRLF at the end of one read.
        assert_eq!(
            events(&[b"data: a\r\n\r\ndata: b\r\rdata: c\r", b"\n\r\n"]),
            ["a", "b", "c"]
        );
        // Several data lines, no space, empty data, a field without a colon.
        assert_eq!(events(&[b"data:x\ndata:  y\n\n"]), ["x\n y"]);
        assert_eq!(events(&[b"data\n\ndata:\n\n"]), ["", ""]);
        // No data: no event; an unfinished event at the end is not dispatched.
        assert_eq!(
            events(&[b"event: ping\n\nretry: 5\n\ndata: late"]),
            Vec::<String>::new()
        );
        // Multi-byte characters split across reads.
        let text = "data: héllo ✓\n\n".as_bytes();
        assert_eq!(events(&[&text[..8], &text[8..]]), ["héllo ✓"]);
    }
}
