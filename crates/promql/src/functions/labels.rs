//! `label_replace` and `label_join` (Prometheus' `evalLabelReplace` and
//! `evalLabelJoin`), with Go's `regexp.Expand` template rules.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use regex::Regex;
use sightline_model::Labels;

use crate::value::VectorSample;
use crate::{Error, Result};

/// Most compiled `label_replace` regexes kept per thread (range queries call the
/// function once per step with the same pattern).
const REGEX_CACHE_CAPACITY: usize = 64;

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Compiles `^(?s:pattern)$` as Prometheus does (in Go's regex syntax), through a
/// small per-thread cache.
fn anchored_regex(pattern: &str) -> Result<Regex> {
    if let Some(regex) = REGEX_CACHE.with(|cache| cache.borrow().get(pattern).cloned()) {
        return Ok(regex);
    }
    let go_pattern = sightline_tsdb::go_regex::go_regex_to_rust(pattern);
    let regex = Regex::new(&format!("^(?s:{go_pattern})$")).map_err(|_| {
        Error::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    REGEX_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= REGEX_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), regex.clone());
    });
    Ok(regex)
}

/// Prometheus 3 accepts any non-empty UTF-8 label name; our strings are always
/// UTF-8. (A query's `"\xff"` is an invalid byte for Prometheus, but the parser
/// hands it to us as the valid character U+00FF.)
fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

pub(crate) fn label_replace(
    input: Vec<VectorSample>,
    destination: &str,
    replacement: &str,
    source: &str,
    pattern: &str,
) -> Result<Vec<VectorSample>> {
    let regex = anchored_regex(pattern)?;
    if !is_valid_label_name(destination) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {destination}"
        )));
    }
    let mut output = Vec::with_capacity(input.len());
    for mut sample in input {
        let source_value = sample.labels.get(source).unwrap_or("");
        if let Some(captures) = regex.captures(source_value) {
            let value = expand(&regex, &captures, replacement);
            sample.labels = sample.labels.to_builder().set(destination, value).build();
        }
        output.push(sample);
    }
    ensure_unique_label_sets(&output)?;
    Ok(output)
}

pub(crate) fn label_join(
    input: Vec<VectorSample>,
    destination: &str,
    separator: &str,
    sources: &[String],
) -> Result<Vec<VectorSample>> {
    if let Some(source) = sources.iter().find(|s| !is_valid_label_name(s)) {
        return Err(Error::Execution(format!(
            "invalid source label name in label_join(): {source}"
        )));
    }
    if !is_valid_label_name(destination) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {destination}"
        )));
    }
    let mut output = Vec::with_capacity(input.len());
    for mut sample in input {
        let values: Vec<&str> = sources
            .iter()
            .map(|source| sample.labels.get(source).unwrap_or(""))
            .collect();
        let joined = values.join(separator);
        sample.labels = sample.labels.to_builder().set(destination, joined).build();
        output.push(sample);
    }
    ensure_unique_label_sets(&output)?;
    Ok(output)
}

fn ensure_unique_label_sets(samples: &[VectorSample]) -> Result<()> {
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(samples.len());
    for sample in samples {
        if !seen.insert(&sample.labels) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Go's `Regexp.ExpandString`: `$name`, `${name}`, `$1`, `$$`; an unknown group
/// expands to nothing and a malformed `$` is kept literally.
pub(crate) fn expand(regex: &Regex, captures: &regex::Captures<'_>, template: &str) -> String {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        output.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            output.push('$');
            rest = after;
            continue;
        }
        let Some((name, number, after)) = extract_group_reference(rest) else {
            output.push('$');
            continue;
        };
        rest = after;
        let group = match number {
            Some(index) => captures.get(index),
            None => regex
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|index| captures.get(index)),
        };
        if let Some(group) = group {
            output.push_str(group.as_str());
        }
    }
    output.push_str(rest);
    output
}

/// Go's `regexp.extract`: the group name after a `$`, its number if it is one
/// (no leading zeros, below 1e8), and the remaining template.
fn extract_group_reference(template: &str) -> Option<(&str, Option<usize>, &str)> {
    let (braced, body) = match template.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, template),
    };
    let name_len: usize = body
        .chars()
        .take_while(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let mut rest = &body[name_len..];
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    let mut number: Option<usize> = Some(0);
    for byte in name.bytes() {
        number = match number {
            Some(n) if byte.is_ascii_digit() && n < 100_000_000 => {
                Some(n * 10 + usize::from(byte - b'0'))
            }
            _ => None,
        };
    }
    if name.len() > 1 && name.starts_with('0') {
        number = None;
    }
    Some((name, number, rest))
}
