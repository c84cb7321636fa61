//! Incremental text for streaming: turns the growing decoded text of one sequence into pieces
//! that are safe to send — never past a stop string, never a partial stop string that may still
//! complete, and never an incomplete UTF-8 character (decoded as U+FFFD).

/// Streaming state of one sequence.
#[derive(Debug, Clone, Default)]
pub struct StreamText {
    stops: Vec<String>,
    /// Text sent so far.
    sent: String,
    /// Latest full text (cut before a stop string once one appeared).
    text: String,
    stopped: bool,
}

impl StreamText {
    /// A stream that ends before any of `stops`.
    pub fn new(stops: &[String]) -> Self {
        StreamText {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Self::default()
        }
    }

    /// Whether a stop string has appeared.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds the full decoded text so far; returns the new piece to send, if any.
    pub fn update(&mut self, full: &str) -> Option<String> {
        if self.stopped {
            return None;
        }
        let cut = self
            .stops
            .iter()
            .filter_map(|s| full.find(s.as_str()))
            .min();
        let safe_end = match cut {
            Some(c) => {
                self.stopped = true;
                c
            }
            None => self.safe_end(full),
        };
        self.text = match cut {
            Some(c) => full[..c].to_string(),
            None => full.to_string(),
        };
        self.take_piece(safe_end)
    }

    /// The final text and the piece still held back (sent by the caller before finishing).
    pub fn finish(&mut self) -> (String, Option<String>) {
        let piece = if self.text.ends_with('\u{FFFD}') {
            // A trailing incomplete character is dropped from the final text.
            let end = self.text.trim_end_matches('\u{FFFD}').len();
            self.text.truncate(end);
            self.take_piece(end)
        } else {
            self.take_piece(self.text.len())
        };
        (self.text.clone(), piece)
    }

    /// End of the prefix of `full` that can be sent now.
    fn safe_end(&self, full: &str) -> usize {
        let mut end = full.trim_end_matches('\u{FFFD}').len();
        // Hold back the longest suffix that is a proper prefix of a stop string.
        for stop in &self.stops {
            for k in (1..stop.len()).rev() {
                if !stop.is_char_boundary(k) {
                    continue;
                }
                if full[..end].ends_with(&stop[..k]) {
                    end = end.min(full[..end].len() - k);
                    break;
                }
            }
        }
        end
    }

    fn take_piece(&mut self, end: usize) -> Option<String> {
        let text = &self.text;
        // Only extend what was sent; if decoding rewrote earlier text, wait.
        if end <= self.sent.len()
            || !text.starts_with(self.sent.as_str())
            || !text.is_char_boundary(end)
        {
            return None;
        }
        let piece = text[self.sent.len()..end].to_string();
        self.sent.push_str(&piece);
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], steps: &[&str]) -> (Vec<String>, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = StreamText::new(&stops);
        let mut pieces: Vec<String> = steps.iter().filter_map(|t| s.update(t)).collect();
        let (text, rest) = s.finish();
        pieces.extend(rest);
        (pieces, text)
    }

    #[test]
    fn pieces_concatenate_to_the_text() {
        let (pieces, text) = run(&[], &["Hel", "Hello", "Hello wor", "Hello world"]);
        assert_eq!(pieces, vec!["Hel", "lo", " wor", "ld"]);
        assert_eq!(text, "Hello world");
    }

    #[test]
    fn stop_string_is_never_sent() {
        let (pieces, text) = run(&["</s>"], &["a", "a<", "a</", "a</s", "a</s>", "a</s>b"]);
        assert_eq!(pieces.concat(), "a");
        assert_eq!(text, "a");
    }

    #[test]
    fn partial_stop_that_does_not_complete_is_sent_later() {
        let (pieces, text) = run(&["STOP"], &["x ST", "x STA", "x STAR"]);
        assert_eq!(pieces, vec!["x ", "STA", "R"]);
        assert_eq!(text, "x STAR");
    }

    #[test]
    fn incomplete_utf8_is_held_back() {
        let (pieces, text) = run(&[], &["caf", "caf\u{FFFD}", "café"]);
        assert_eq!(pieces, vec!["caf", "é"]);
        assert_eq!(text, "café");
    }
}
