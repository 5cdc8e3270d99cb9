//! Go's regular expression syntax (RE2, as Prometheus compiles label matchers and
//! `label_replace` patterns) rewritten into the `regex` crate's, so that a pattern
//! matches the same strings in both.
//!
//! The two syntaxes are nearly the same; where they differ on the same text:
//! - `\d`, `\w`, `\s` and their negations are ASCII-only in Go and Unicode-aware in
//!   the `regex` crate (`\d` matches `٣` here, not in Prometheus); `\b` and `\B` are
//!   ASCII word boundaries in Go;
//! - inside a bracket class, Go takes `[` (unless it opens `[:alpha:]`), `&&` and
//!   `~~` literally, where the `regex` crate nests classes and applies set
//!   operations;
//! - `{` that does not start a repetition (`a{`, `{x}`) is a literal in Go and an
//!   error here.
//!
//! Everything else is passed through unchanged. Every regex that Prometheus would
//! compile with Go (label matchers of any API, PromQL's `label_replace`) goes through
//! here, so the store's matchers and the query engine agree.

/// Go's `\d`, `\w`, `\s` as `regex` class items (usable inside brackets).
const ASCII_DIGIT: &str = "0-9";
const ASCII_WORD: &str = "0-9A-Za-z_";
const ASCII_SPACE: &str = r"\t\n\f\r ";

/// `pattern` (Go syntax) in the `regex` crate's syntax with the same meaning. Invalid
/// patterns stay invalid.
pub fn go_regex_to_rust(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let Some(&escaped) = chars.get(i) else {
                    out.push('\\');
                    break;
                };
                i += 1;
                push_escape(&mut out, escaped, in_class);
                // `\p{Greek}`, `\P{L}`, `\x{263a}`: the braces belong to the escape.
                if matches!(escaped, 'p' | 'P' | 'x') && chars.get(i) == Some(&'{') {
                    let end = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .map_or(chars.len(), |n| i + n + 1);
                    out.extend(&chars[i..end]);
                    i = end;
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after `[` or `[^` is a literal in both syntaxes; escape
                // it anyway so the rest of the scan does not close the class on it.
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
            }
            '[' => {
                if chars.get(i) == Some(&':') {
                    // A POSIX class `[:name:]` (or `[:^name:]`): copy it whole.
                    let end = (i..chars.len().saturating_sub(1))
                        .find(|&j| chars[j] == ':' && chars[j + 1] == ']' && j > i);
                    match end {
                        Some(end) => {
                            out.push('[');
                            out.extend(&chars[i..end + 2]);
                            i = end + 2;
                        }
                        None => out.push_str(r"\["),
                    }
                } else {
                    out.push_str(r"\[");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '{' if !in_class && !starts_repetition(&chars[i..]) => out.push_str(r"\{"),
            _ => out.push(c),
        }
    }
    out
}

fn push_escape(out: &mut String, escaped: char, in_class: bool) {
    let (negated, items) = match escaped {
        'd' => (false, ASCII_DIGIT),
        'D' => (true, ASCII_DIGIT),
        'w' => (false, ASCII_WORD),
        'W' => (true, ASCII_WORD),
        's' => (false, ASCII_SPACE),
        'S' => (true, ASCII_SPACE),
        'b' | 'B' if !in_class => {
            out.push_str(if escaped == 'b' {
                r"(?-u:\b)"
            } else {
                r"(?-u:\B)"
            });
            return;
        }
        _ => {
            out.push('\\');
            out.push(escaped);
            return;
        }
    };
    match (negated, in_class) {
        // Inside brackets a positive class is a list of ranges, a negated one a
        // nested class (the `regex` crate takes the union).
        (false, true) => out.push_str(items),
        (false, false) => {
            out.push('[');
            out.push_str(items);
            out.push(']');
        }
        (true, _) => {
            out.push_str("[^");
            out.push_str(items);
            out.push(']');
        }
    }
}

/// Whether `rest` (the text after a `{`) is a repetition `n}`, `n,}` or `n,m}`.
fn starts_repetition(rest: &[char]) -> bool {
    let digits = |from: usize| {
        rest[from.min(rest.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let first = digits(0);
    if first == 0 {
        return false;
    }
    match rest.get(first) {
        Some('}') => true,
        Some(',') => {
            let second = digits(first + 1);
            rest.get(first + 1 + second) == Some(&'}')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::go_regex_to_rust;

    /// Whether Go's regexp would match all of `text` with `pattern`, by way of the
    /// translation, for each `(pattern, text, matches)`.
    fn check(cases: &[(&str, &str, bool)]) {
        for &(pattern, text, want) in cases {
            let translated = go_regex_to_rust(pattern);
            let regex = regex::Regex::new(&format!("^(?s:{translated})$"))
                .unwrap_or_else(|e| panic!("{pattern} -> {translated}: {e}"));
            assert_eq!(
                regex.is_match(text),
                want,
                "{pattern} ({translated}) on {text:?}"
            );
        }
    }

    /// Found by the differential test against Prometheus: `\d` matched the Arabic-Indic
    /// digit `٣` and `\w` the letter `Ü` here, neither in Prometheus.
    #[test]
    fn perl_classes_and_word_boundaries_are_ascii_as_in_go() {
        check(&[
            (r".*\d", "Ünïcödé ٣", false),
            (r".*\d", "ascii 7", true),
            (r"\D+", "Ünïcödé ٣", true),
            (r"\w+.*", "Ünïcödé", false),
            (r"\W\w+", "Üx", true),
            (r"a\sb", "a\tb", true),
            (r"a\sb", "a\u{a0}b", false),
            (r"a\Sb", "a\u{a0}b", true),
            (r"[\d.]+", "1.5", true),
            (r"[\d]", "٣", false),
            (r"[^\d]", "٣", true),
            (r"[x\D]", "٣", true),
            (r"[^\W]", "Ü", false),
            // An ASCII word boundary: between `é` and `x` there is none in Unicode, one in Go.
            (r".*\bx", "éx", true),
            (r".*\Bx", "éx", false),
            (r"snake_case\b.*", "snake_case 42", true),
        ]);
    }

    #[test]
    fn brackets_braces_and_set_operators_read_as_in_go() {
        check(&[
            (r"[[]", "[", true),
            (r"[a[]+", "a[a", true),
            (r"[[:alpha:]]+", "abc", true),
            (r"[[:alpha:]]+", "Ü", false),
            (r"[[:^digit:]x]", "y", true),
            (r"[]a]+", "]a", true),
            (r"[^]a]", "b", true),
            (r"[a&&b]+", "a&b", true),
            (r"[a~~b]+", "~", true),
            (r"a{", "a{", true),
            (r"{x}", "{x}", true),
            (r"a{2}", "aa", true),
            (r"a{1,}", "aaa", true),
            (r"a{1,2}b{,", "ab{,", true),
            (r"\pL+ \p{Greek}+", "Ünï σίγμα", true),
            (r"(?i)σίγμα", "ΣΊΓΜΑ", true),
            (r"\\d", r"\d", true),
            (r"\x{263a}\P{L}", "\u{263a}1", true),
            (r"\.\*", ".*", true),
        ]);
    }

    #[test]
    fn plain_patterns_are_unchanged() {
        for pattern in [
            "api|web",
            "10\\.0\\.0\\.1:.*",
            "(a|w).*",
            "(.*):.*",
            "",
            "[a-z]+",
        ] {
            assert_eq!(go_regex_to_rust(pattern), pattern);
        }
    }
}
