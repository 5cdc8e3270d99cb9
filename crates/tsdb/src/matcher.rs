//! Label matchers with Prometheus semantics: a missing label matches as `""`, regexes
//! are fully anchored.

use crate::{Error, Result};

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

/// One label matcher, e.g. `job=~"api|web"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<regex::Regex>,
    /// For regexes that are a plain alternation of literals (`a|b|c`): the literals,
    /// sorted, so the index can look them up instead of scanning values.
    literals: Option<Vec<String>>,
}

impl Matcher {
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Matcher> {
        let name = name.into();
        let value = value.into();
        let (regex, literals) = match op {
            MatchOp::Equal | MatchOp::NotEqual => (None, None),
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                let translated = crate::go_regex::go_regex_to_rust(&value);
                let regex =
                    regex::Regex::new(&format!("^(?s:{translated})$")).map_err(|error| {
                        Error::InvalidRegex {
                            regex: value.clone(),
                            message: error.to_string(),
                        }
                    })?;
                (Some(regex), literal_alternatives(&value))
            }
        };
        Ok(Matcher {
            name,
            op,
            value,
            regex,
            literals,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn op(&self) -> MatchOp {
        self.op
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value matches; pass `""` for a missing label.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch => self.regex_matches(value),
            MatchOp::RegexNoMatch => !self.regex_matches(value),
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        if let Some(literals) = &self.literals {
            return literals.binary_search_by(|l| l.as_str().cmp(value)).is_ok();
        }
        self.regex.as_ref().is_some_and(|r| r.is_match(value))
    }

    /// The literal alternatives of a regex matcher, if its regex is one.
    pub(crate) fn literals(&self) -> Option<&[String]> {
        self.literals.as_deref()
    }
}

/// `a|b|c` where no part has a regex metacharacter → `["a","b","c"]` (sorted, unique).
fn literal_alternatives(value: &str) -> Option<Vec<String>> {
    let mut literals = Vec::new();
    // Characters with a meaning outside a class in the default syntax; `-`, `#`, `&`
    // and `~` only mean something inside classes or with flags, which need these.
    const META: &[char] = &[
        '\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$',
    ];
    for part in value.split('|') {
        if part.contains(META) {
            return None;
        }
        literals.push(part.to_string());
    }
    literals.sort();
    literals.dedup();
    Some(literals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_mean_what_go_means() {
        // Every API's matchers (series, labels, PromQL) compile here: `\d` is ASCII
        // in Go, so an Arabic-Indic digit does not match; `.` matches a newline.
        let m = Matcher::new(MatchOp::RegexMatch, "code", r"\d+").unwrap();
        assert!(m.matches("500") && !m.matches("٣"));
        let m = Matcher::new(MatchOp::RegexNoMatch, "code", r"\w+").unwrap();
        assert!(m.matches("é") && !m.matches("abc_1"));
        let m = Matcher::new(MatchOp::RegexMatch, "msg", "a.b").unwrap();
        assert!(m.matches("a\nb"));
    }

    #[test]
    fn prometheus_semantics() {
        let m = Matcher::new(MatchOp::RegexMatch, "job", "api|web").unwrap();
        assert_eq!(m.literals().map(<[String]>::len), Some(2));
        assert!(m.matches("api") && m.matches("web") && !m.matches("apiweb") && !m.matches(""));
        let m = Matcher::new(MatchOp::RegexMatch, "job", "a.*").unwrap();
        assert!(m.literals().is_none());
        assert!(m.matches("abc") && !m.matches("xabc"));
        let m = Matcher::new(MatchOp::RegexNoMatch, "job", "").unwrap();
        assert!(!m.matches("") && m.matches("x"));
        let m = Matcher::new(MatchOp::RegexMatch, "job", "a|").unwrap();
        assert!(m.matches("") && m.matches("a"));
        let m = Matcher::new(MatchOp::RegexMatch, "x", "eu-west-1|us-east-1").unwrap();
        assert_eq!(m.literals().map(<[String]>::len), Some(2));
        assert!(m.matches("eu-west-1") && !m.matches("eu"));
        let m = Matcher::new(MatchOp::RegexMatch, "x", "a\nb|.").unwrap();
        assert!(m.matches("\n"));
        assert!(matches!(
            Matcher::new(MatchOp::RegexMatch, "job", "("),
            Err(Error::InvalidRegex { .. })
        ));
    }
}
