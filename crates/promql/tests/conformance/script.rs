//! The promqltest script format (Prometheus `promql/promqltest/README.md`), parsed the
//! way Prometheus' `test.go` does: lines are trimmed, `#` lines become blank, a blank
//! line ends a block.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sightline_model::Labels;

use crate::series::{SeqValue, SeriesDesc, parse_duration_ms, parse_number, parse_series_line};

/// How an annotation or error message is matched.
#[derive(Debug, Clone)]
pub(crate) enum MessageMatch {
    Any,
    Exact(String),
    Regex(regex::Regex),
}

impl MessageMatch {
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            MessageMatch::Any => true,
            MessageMatch::Exact(message) => message == text,
            MessageMatch::Regex(regex) => regex.is_match(text),
        }
    }
}

/// When an eval runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EvalTime {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// What the query is expected to return.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expected {
    pub(crate) scalar: Option<f64>,
    /// Labels → (1-based position among result lines, values).
    pub(crate) series: BTreeMap<Labels, (usize, Vec<SeqValue>)>,
    pub(crate) string: Option<String>,
}

impl Expected {
    pub(crate) fn has_histogram(&self) -> bool {
        self.series
            .values()
            .any(|(_, values)| values.contains(&SeqValue::Histogram))
    }
}

/// One `eval` statement.
#[derive(Debug, Clone)]
pub(crate) struct EvalCase {
    /// 1-based line of the `eval` line.
    pub(crate) line: usize,
    pub(crate) expr: String,
    pub(crate) time: EvalTime,
    pub(crate) fail: Option<MessageMatch>,
    pub(crate) ordered: bool,
    /// Legacy `eval_warn` / `eval_info`: at least one annotation of the kind.
    pub(crate) legacy_warn: bool,
    pub(crate) legacy_info: bool,
    pub(crate) warn: Vec<MessageMatch>,
    pub(crate) info: Vec<MessageMatch>,
    pub(crate) no_warn: bool,
    pub(crate) no_info: bool,
    pub(crate) expected: Expected,
    /// `expect range vector from .. to .. step ..` for an instant query.
    pub(crate) range_vector: Option<(i64, i64, i64)>,
    /// Not checked again as a range query (string results, range vectors).
    pub(crate) exclude_from_range_query: bool,
}

/// One command of a script.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load {
        interval_ms: i64,
        with_nhcb: bool,
        series: Vec<SeriesDesc>,
    },
    Clear,
    Eval(Box<EvalCase>),
    /// An eval statement this parser could not read: a runner bug to report.
    BadEval {
        line: usize,
        error: String,
    },
}

static EVAL_INSTANT: LazyLock<regex::Regex> = LazyLock::new(|| {
    compile(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
});
static EVAL_RANGE: LazyLock<regex::Regex> = LazyLock::new(|| {
    compile(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$")
});
static EXPECT: LazyLock<regex::Regex> = LazyLock::new(|| {
    compile(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
});
static EXPECT_RANGE: LazyLock<regex::Regex> =
    LazyLock::new(|| compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$"));
static LOAD: LazyLock<regex::Regex> = LazyLock::new(|| compile(r"^load(?:_(with_nhcb))?\s+(.+?)$"));

fn compile(pattern: &str) -> regex::Regex {
    // Constant patterns of this file; a typo fails the first test run.
    regex::Regex::new(pattern).unwrap_or_else(|error| panic!("bad regex {pattern}: {error}"))
}

/// Parses a whole script. Errors outside eval blocks abort the file.
pub(crate) fn parse_script(input: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<String> = input
        .split('\n')
        .map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                String::new()
            } else {
                line.to_string()
            }
        })
        .collect();
    let mut commands = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = &lines[index];
        if line.is_empty() {
            index += 1;
            continue;
        }
        let word = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if word == "clear" {
            commands.push(Command::Clear);
            index += 1;
        } else if word.starts_with("load") {
            let (next, command) = parse_load(&lines, index)?;
            commands.push(command);
            index = next;
        } else if word.starts_with("eval") {
            let end = block_end(&lines, index);
            match parse_eval(&lines[index..end], index + 1) {
                Ok(case) => commands.push(Command::Eval(Box::new(case))),
                Err(error) => commands.push(Command::BadEval {
                    line: index + 1,
                    error,
                }),
            }
            index = end;
        } else {
            return Err(format!("line {}: invalid command {line:?}", index + 1));
        }
    }
    Ok(commands)
}

fn block_end(lines: &[String], start: usize) -> usize {
    let mut end = start + 1;
    while end < lines.len() && !lines[end].is_empty() {
        end += 1;
    }
    end
}

fn parse_load(lines: &[String], index: usize) -> Result<(usize, Command), String> {
    let captures = LOAD
        .captures(&lines[index])
        .ok_or_else(|| format!("line {}: invalid load command", index + 1))?;
    let with_nhcb = captures.get(1).is_some();
    let interval_ms =
        parse_duration_ms(&captures[2]).map_err(|e| format!("line {}: {e}", index + 1))?;
    let end = block_end(lines, index);
    let mut series = Vec::new();
    for (offset, line) in lines[index + 1..end].iter().enumerate() {
        let desc =
            parse_series_line(line).map_err(|e| format!("line {}: {e}", index + 2 + offset))?;
        series.push(desc);
    }
    Ok((
        end,
        Command::Load {
            interval_ms,
            with_nhcb,
            series,
        },
    ))
}

fn parse_eval(block: &[String], line: usize) -> Result<EvalCase, String> {
    let head = &block[0];
    let (modifier, expr, time) = if let Some(c) = EVAL_INSTANT.captures(head) {
        let at = c
            .get(2)
            .map_or(Ok(0), |at| parse_duration_ms(at.as_str()))?;
        (
            c.get(1).map(|m| m.as_str()),
            c[3].to_string(),
            EvalTime::Instant { at },
        )
    } else if let Some(c) = EVAL_RANGE.captures(head) {
        let start = parse_duration_ms(&c[2])?;
        let end = parse_duration_ms(&c[3])?;
        let step = parse_duration_ms(&c[4])?;
        if end < start {
            return Err("end before start".into());
        }
        (
            c.get(1).map(|m| m.as_str()),
            c[5].to_string(),
            EvalTime::Range { start, end, step },
        )
    } else {
        return Err(format!("invalid eval command {head:?}"));
    };
    let mut case = EvalCase {
        line,
        expr,
        time,
        fail: None,
        ordered: modifier == Some("ordered"),
        legacy_warn: modifier == Some("warn"),
        legacy_info: modifier == Some("info"),
        warn: Vec::new(),
        info: Vec::new(),
        no_warn: false,
        no_info: false,
        expected: Expected::default(),
        range_vector: None,
        exclude_from_range_query: false,
    };
    if modifier == Some("fail") {
        case.fail = Some(MessageMatch::Any);
    }
    let is_instant = matches!(time, EvalTime::Instant { .. });
    let mut position = 0;
    for def in &block[1..] {
        if case.fail.is_some() {
            if let Some(message) = def.strip_prefix("expected_fail_message") {
                case.fail = Some(MessageMatch::Exact(message.trim().to_string()));
                break;
            }
            if let Some(pattern) = def.strip_prefix("expected_fail_regexp") {
                let regex = regex::Regex::new(pattern.trim()).map_err(|e| e.to_string())?;
                case.fail = Some(MessageMatch::Regex(regex));
                break;
            }
        }
        if def.starts_with("expect range vector") {
            let c = EXPECT_RANGE
                .captures(def)
                .ok_or("bad expect range vector")?;
            let (start, end, step) = (
                parse_duration_ms(&c[1])?,
                parse_duration_ms(&c[2])?,
                parse_duration_ms(&c[3])?,
            );
            case.range_vector = Some((start, end, step));
            case.exclude_from_range_query = true;
            continue;
        }
        if let Some(rest) = def.strip_prefix("expect string") {
            case.expected.string = Some(unquote(rest.trim())?);
            case.exclude_from_range_query = true;
            continue;
        }
        if def.split(' ').next() == Some("expect") {
            parse_expect(def, &mut case)?;
            continue;
        }
        position += 1;
        if let Some(value) = parse_number(def) {
            case.expected.scalar = Some(value);
            case.expected.series.clear();
            break;
        }
        let desc = parse_series_line(def)?;
        if desc.values.len() > 1 && is_instant && case.range_vector.is_none() {
            return Err("multiple values in an instant evaluation".into());
        }
        case.expected.scalar = None;
        case.expected
            .series
            .insert(desc.labels, (position, desc.values));
    }
    Ok(case)
}

fn parse_expect(def: &str, case: &mut EvalCase) -> Result<(), String> {
    let c = EXPECT
        .captures(def.trim())
        .ok_or_else(|| format!("invalid expect line {def:?}"))?;
    let matcher = match c.get(2).map(|m| m.as_str()) {
        Some("msg") => MessageMatch::Exact(c[3].trim().to_string()),
        Some(_) => MessageMatch::Regex(regex::Regex::new(c[3].trim()).map_err(|e| e.to_string())?),
        None => MessageMatch::Any,
    };
    match &c[1] {
        "ordered" => case.ordered = true,
        "fail" => case.fail = Some(matcher),
        "warn" => case.warn.push(matcher),
        "info" => case.info.push(matcher),
        "no_warn" => case.no_warn = true,
        _ => case.no_info = true,
    }
    Ok(())
}

/// Go's `strconv.Unquote` for the common cases: "..." with escapes, `...`.
fn unquote(text: &str) -> Result<String, String> {
    if let Some(raw) = text.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return Ok(raw.to_string());
    }
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| format!("expected a quoted string, got {text:?}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => return Err("dangling escape".into()),
        }
    }
    Ok(out)
}
