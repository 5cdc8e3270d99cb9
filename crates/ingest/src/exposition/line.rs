//! A cursor over one line of an exposition body: the tokens both text formats share.

use crate::Error;

/// Position in one line; errors carry the line number and what follows the position.
pub(super) struct Cursor<'a> {
    text: &'a str,
    position: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str, line: usize) -> Cursor<'a> {
        Cursor {
            text,
            position: 0,
            line,
        }
    }

    /// An error at the current position: `message`, then what was found there.
    pub(super) fn error(&self, message: &str) -> Error {
        let found: String = self.rest().chars().take(24).collect();
        let found = if found.is_empty() {
            "the end of the line".to_string()
        } else {
            format!("{found:?}")
        };
        Error::Exposition {
            line: self.line,
            message: format!("{message}, found {found}"),
        }
    }

    pub(super) fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    pub(super) fn at_end(&self) -> bool {
        self.position >= self.text.len()
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(super) fn at_blank(&self) -> bool {
        matches!(self.peek(), Some(' ' | '\t'))
    }

    pub(super) fn skip_blanks(&mut self) {
        let rest = self.rest();
        self.position += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    }

    /// Skips blanks only when `c` follows them.
    pub(super) fn skip_blanks_before(&mut self, c: char) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if trimmed.starts_with(c) {
            self.position += rest.len() - trimmed.len();
        }
    }

    /// Consumes `c` when it is next.
    pub(super) fn eat_char(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.position += c.len_utf8();
            return true;
        }
        false
    }

    /// Consumes `c`, which the caller knows is next.
    pub(super) fn bump(&mut self, c: char) {
        let eaten = self.eat_char(c);
        debug_assert!(eaten, "bump({c:?}) where it is not next");
    }

    /// Consumes `word` when the rest starts with it.
    pub(super) fn eat_word(&mut self, word: &str) -> bool {
        if self.rest().starts_with(word) {
            self.position += word.len();
            return true;
        }
        false
    }

    fn take_while(&mut self, first: impl Fn(u8) -> bool, more: impl Fn(u8) -> bool) -> &'a str {
        let bytes = self.rest().as_bytes();
        if bytes.first().is_none_or(|b| !first(*b)) {
            return "";
        }
        let length = 1 + bytes[1..].iter().take_while(|b| more(**b)).count();
        let token = &self.rest()[..length];
        self.position += length;
        token
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub(super) fn metric_name(&mut self) -> Option<&'a str> {
        let name = self.take_while(
            |b| b.is_ascii_alphabetic() || b == b'_' || b == b':',
            |b| b.is_ascii_alphanumeric() || b == b'_' || b == b':',
        );
        (!name.is_empty()).then_some(name)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`.
    pub(super) fn label_name(&mut self) -> Option<&'a str> {
        let name = self.take_while(
            |b| b.is_ascii_alphabetic() || b == b'_',
            |b| b.is_ascii_alphanumeric() || b == b'_',
        );
        (!name.is_empty()).then_some(name)
    }

    /// A double-quoted label value, unescaped.
    pub(super) fn label_value(&mut self) -> Result<String, Error> {
        if !self.eat_char('"') {
            return Err(self.error("expected a double-quoted label value"));
        }
        let start = self.position;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        let mut end = None;
        for (offset, byte) in bytes[start..].iter().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match byte {
                b'\\' => {
                    escaped = true;
                }
                b'"' => {
                    end = Some(start + offset);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return Err(self.error("label value is not terminated by '\"'"));
        };
        let raw = &self.text[start..end];
        self.position = end + 1;
        Ok(unescape(raw, true))
    }

    fn token(&mut self) -> &'a str {
        let rest = self.rest();
        let length = rest.find([' ', '\t']).unwrap_or(rest.len());
        self.position += length;
        &rest[..length]
    }

    /// A Go-style float token: decimal with optional exponent, `NaN`, `Inf`, `+Inf`,
    /// `-Inf` (any case). No hexadecimal, no `_`.
    pub(super) fn float(&mut self, what: &str) -> Result<f64, Error> {
        let before = self.position;
        let token = self.token();
        let valid_chars = token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
        let hex = token
            .trim_start_matches(['+', '-'])
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("0x"));
        let signed_nan = token.len() > 3
            && token.starts_with(['+', '-'])
            && token[1..].eq_ignore_ascii_case("nan");
        match token.parse::<f64>() {
            Ok(value) if valid_chars && !hex && !signed_nan && !token.is_empty() => Ok(value),
            _ => {
                self.position = before;
                Err(self.error(&format!("expected a float {what}")))
            }
        }
    }

    /// A decimal integer token (Prometheus text timestamps).
    pub(super) fn integer(&mut self, what: &str) -> Result<i64, Error> {
        let before = self.position;
        let token = self.token();
        match token.parse::<i64>() {
            Ok(value) if !token.starts_with('+') => Ok(value),
            _ => {
                self.position = before;
                Err(self.error(&format!("expected an integer {what}")))
            }
        }
    }
}

/// Undoes the text formats' escapes: `\\` and `\n`, and `\"` when `quote` (label
/// values, OpenMetrics `HELP`). Any other backslash stays as written.
pub(super) fn unescape(text: &str, quote: bool) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
