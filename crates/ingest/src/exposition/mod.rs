//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, as scrape
//! targets serve them, parsed into flat samples and metric metadata.
//!
//! Semantics follow Prometheus' own parsers (`model/textparse`, Prometheus 2.42):
//!
//! - Histograms and summaries are their flat series (`_bucket`, `_sum`, `_count`,
//!   quantiles); OpenMetrics `_created` series are kept as ordinary series.
//! - Prometheus text: blank lines and `#` comments other than `HELP`/`TYPE` are
//!   skipped; whitespace may surround label names, `=` and values; timestamps are
//!   integer milliseconds.
//! - OpenMetrics: exactly one space between tokens, no blank lines, no comments other
//!   than `HELP`/`TYPE`/`UNIT`, the body must end with `# EOF` and nothing may follow
//!   it; timestamps are float seconds; a sample may carry an exemplar
//!   (`# {trace_id="x"} 1.0 123.0`) whose label text is at most 128 characters.
//! - Label values unescape `\\`, `\"` and `\n` (any other backslash stays as written);
//!   `HELP` text unescapes `\\` and `\n` (and `\"` in OpenMetrics).
//! - Values are Go-style floats (`NaN`, `+Inf`, `-Inf`, exponents); hexadecimal floats
//!   and `_` digit separators are refused, as Prometheus refuses them.
//!
//! Every error names its 1-based line number.

mod line;
#[cfg(test)]
mod tests;

use sightline_model::{Label, Labels, METRIC_NAME_LABEL, MetricMetadata, MetricType};

use crate::{Error, Result};
use line::Cursor;

/// Longest exemplar label text (names plus values, in characters), as OpenMetrics sets.
pub const MAX_EXEMPLAR_LABEL_CHARS: usize = 128;

/// Which of the two text formats a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0` (or 0.0.1).
    OpenMetrics,
}

impl Format {
    /// The format a response's `Content-Type` announces. Anything that is not
    /// OpenMetrics is read as Prometheus text, as Prometheus does for text bodies.
    pub fn from_content_type(content_type: &str) -> Format {
        if crate::media_type(content_type) == "application/openmetrics-text" {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// An exemplar as exposed: its timestamp is optional (the scraper then uses the
/// sample's).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExemplar {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The series, `__name__` included, sorted.
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch, when the line carries a timestamp.
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<ParsedExemplar>,
}

/// Everything one body exposes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    /// Samples in body order.
    pub samples: Vec<ParsedSample>,
    /// One entry per metric family with a `HELP`, `TYPE` or `UNIT` line, in order of
    /// first appearance.
    pub metadata: Vec<MetricMetadata>,
}

/// Parses a whole body.
pub fn parse(body: &[u8], format: Format) -> Result<Exposition> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        syntax(line, "is not valid UTF-8".to_string())
    })?;
    let mut parser = Parser {
        format,
        exposition: Exposition::default(),
    };
    match format {
        Format::PrometheusText => parser.parse_prometheus(text)?,
        Format::OpenMetrics => parser.parse_openmetrics(text)?,
    }
    Ok(parser.exposition)
}

fn syntax(line: usize, message: String) -> Error {
    Error::Exposition { line, message }
}

struct Parser {
    format: Format,
    exposition: Exposition,
}

impl Parser {
    fn parse_prometheus(&mut self, text: &str) -> Result<()> {
        for (index, raw) in text.split('\n').enumerate() {
            let number = index + 1;
            let content = raw.trim_start_matches([' ', '\t']);
            if content.is_empty() {
                continue;
            }
            let mut cursor = Cursor::new(content, number);
            if content.starts_with('#') {
                self.prometheus_comment(&mut cursor)?;
            } else {
                let sample = self.sample(&mut cursor)?;
                self.exposition.samples.push(sample);
            }
        }
        Ok(())
    }

    /// `# HELP`, `# TYPE`, or any other comment (skipped).
    fn prometheus_comment(&mut self, cursor: &mut Cursor<'_>) -> Result<()> {
        cursor.bump('#');
        cursor.skip_blanks();
        let keyword = if cursor.eat_word("HELP") {
            "HELP"
        } else if cursor.eat_word("TYPE") {
            "TYPE"
        } else {
            return Ok(());
        };
        // "# HELPful comment" is a comment, not a HELP line.
        if !cursor.at_end() && !cursor.at_blank() {
            return Ok(());
        }
        cursor.skip_blanks();
        let name = cursor
            .metric_name()
            .ok_or_else(|| cursor.error(&format!("expected metric name after {keyword}")))?;
        if !cursor.at_end() && !cursor.at_blank() {
            return Err(cursor.error(&format!("expected metric name after {keyword}")));
        }
        cursor.skip_blanks();
        let rest = cursor.rest();
        if keyword == "HELP" {
            let help = line::unescape(rest, false);
            self.family(name).help = help;
            return Ok(());
        }
        let metric_type = self.metric_type(cursor, rest.trim_end_matches([' ', '\t']))?;
        self.family(name).metric_type = metric_type;
        Ok(())
    }

    fn parse_openmetrics(&mut self, text: &str) -> Result<()> {
        let mut lines = text.split('\n').enumerate();
        for (index, raw) in lines.by_ref() {
            let number = index + 1;
            if raw == "# EOF" {
                return match lines.next() {
                    None => Ok(()),
                    Some((_, "")) if lines.next().is_none() => Ok(()),
                    Some(_) => Err(syntax(number + 1, "unexpected data after # EOF".into())),
                };
            }
            if raw.is_empty() {
                if index > 0 && lines.clone().next().is_none() {
                    break;
                }
                return Err(syntax(number, "unexpected empty line".into()));
            }
            let mut cursor = Cursor::new(raw, number);
            if raw.starts_with('#') {
                self.openmetrics_descriptor(&mut cursor)?;
            } else {
                let sample = self.sample(&mut cursor)?;
                self.exposition.samples.push(sample);
            }
        }
        let last_line = text.split('\n').count();
        Err(syntax(last_line, "data does not end with # EOF".into()))
    }

    /// `# HELP`, `# TYPE` or `# UNIT`; anything else is an error in OpenMetrics.
    fn openmetrics_descriptor(&mut self, cursor: &mut Cursor<'_>) -> Result<()> {
        cursor.bump('#');
        if !cursor.eat_char(' ') {
            return Err(cursor.error("expected a space after '#'"));
        }
        let keyword = ["HELP", "TYPE", "UNIT"]
            .into_iter()
            .find(|keyword| cursor.eat_word(keyword))
            .ok_or_else(|| cursor.error("expected HELP, TYPE, UNIT or EOF after '# '"))?;
        if !cursor.eat_char(' ') {
            return Err(cursor.error(&format!("expected a space after {keyword}")));
        }
        let name = cursor
            .metric_name()
            .ok_or_else(|| cursor.error(&format!("expected metric name after {keyword}")))?;
        let rest = if cursor.at_end() {
            ""
        } else if cursor.eat_char(' ') {
            cursor.rest()
        } else {
            return Err(cursor.error(&format!("expected a space after the {keyword} name")));
        };
        match keyword {
            "HELP" => self.family(name).help = line::unescape(rest, true),
            "UNIT" => {
                if !rest.is_empty() && !name.ends_with(&format!("_{rest}")) {
                    return Err(cursor.error(&format!(
                        "unit {rest:?} is not a suffix of the metric name {name:?}"
                    )));
                }
                self.family(name).unit = rest.to_string();
            }
            _ => {
                let metric_type = self.metric_type(cursor, rest)?;
                self.family(name).metric_type = metric_type;
            }
        }
        Ok(())
    }

    /// The type a `TYPE` line names: Prometheus text knows five (`untyped` for
    /// unknown), OpenMetrics eight (`unknown`).
    fn metric_type(&self, cursor: &Cursor<'_>, name: &str) -> Result<MetricType> {
        let open_metrics = self.format == Format::OpenMetrics;
        let unknown = if open_metrics { "unknown" } else { "untyped" };
        let metric_type = MetricType::parse(name);
        let allowed = match metric_type {
            MetricType::Unknown => name == unknown,
            MetricType::Counter | MetricType::Gauge => true,
            MetricType::Histogram | MetricType::Summary => true,
            MetricType::GaugeHistogram | MetricType::Info | MetricType::StateSet => open_metrics,
        };
        if !allowed {
            return Err(cursor.error(&format!("invalid metric type {name:?}")));
        }
        Ok(metric_type)
    }

    /// The metadata entry of `name`, created on first mention.
    fn family(&mut self, name: &str) -> &mut MetricMetadata {
        let metadata = &mut self.exposition.metadata;
        // Families are usually described right before their samples: look back first.
        let position = metadata.iter().rposition(|m| m.metric_family_name == name);
        let index = match position {
            Some(index) => index,
            None => {
                metadata.push(MetricMetadata {
                    metric_family_name: name.to_string(),
                    ..MetricMetadata::default()
                });
                metadata.len() - 1
            }
        };
        &mut metadata[index]
    }

    /// `name{labels} value [timestamp] [# {labels} value [timestamp]]`.
    fn sample(&self, cursor: &mut Cursor<'_>) -> Result<ParsedSample> {
        let open_metrics = self.format == Format::OpenMetrics;
        let name = cursor
            .metric_name()
            .ok_or_else(|| cursor.error("expected a metric name"))?;
        let mut labels = vec![Label::new(METRIC_NAME_LABEL, name)];
        if !open_metrics {
            cursor.skip_blanks_before('{');
        }
        if cursor.peek() == Some('{') {
            self.label_set(cursor, &mut labels)?;
        }
        let labels = finish_labels(cursor, labels)?;
        self.separator(cursor, "expected a space before the value")?;
        let value = cursor.float("value")?;
        let mut sample = ParsedSample {
            labels,
            value,
            timestamp_ms: None,
            exemplar: None,
        };
        if self.end_of_sample(cursor) {
            return Ok(sample);
        }
        self.separator(cursor, "expected a space after the value")?;
        if cursor.peek() != Some('#') {
            sample.timestamp_ms = Some(self.timestamp(cursor)?);
            if self.end_of_sample(cursor) {
                return Ok(sample);
            }
            self.separator(cursor, "expected a space after the timestamp")?;
        }
        if !open_metrics || !cursor.eat_word("# ") {
            return Err(cursor.error("expected the end of the line"));
        }
        sample.exemplar = Some(self.exemplar(cursor)?);
        Ok(sample)
    }

    /// True at the end of the line (after trailing blanks in Prometheus text).
    fn end_of_sample(&self, cursor: &mut Cursor<'_>) -> bool {
        if self.format == Format::PrometheusText
            && cursor.rest().trim_matches([' ', '\t']).is_empty()
        {
            return true;
        }
        cursor.at_end()
    }

    /// One space in OpenMetrics, one or more blanks in Prometheus text.
    fn separator(&self, cursor: &mut Cursor<'_>, message: &str) -> Result<()> {
        match self.format {
            Format::OpenMetrics if cursor.eat_char(' ') => Ok(()),
            Format::PrometheusText if cursor.at_blank() => {
                cursor.skip_blanks();
                Ok(())
            }
            _ => Err(cursor.error(message)),
        }
    }

    fn timestamp(&self, cursor: &mut Cursor<'_>) -> Result<i64> {
        match self.format {
            Format::PrometheusText => cursor.integer("timestamp"),
            Format::OpenMetrics => {
                let seconds = cursor.float("timestamp")?;
                seconds_to_millis(seconds).ok_or_else(|| cursor.error("timestamp is out of range"))
            }
        }
    }

    /// `{labels} value [timestamp]` after `# `.
    fn exemplar(&self, cursor: &mut Cursor<'_>) -> Result<ParsedExemplar> {
        if cursor.peek() != Some('{') {
            return Err(cursor.error("expected '{' to start the exemplar's labels"));
        }
        let mut labels = Vec::new();
        self.label_set(cursor, &mut labels)?;
        let chars: usize = labels
            .iter()
            .map(|l| l.name.chars().count() + l.value.chars().count())
            .sum();
        if chars > MAX_EXEMPLAR_LABEL_CHARS {
            return Err(cursor.error(&format!(
                "exemplar labels have {chars} characters; limit is {MAX_EXEMPLAR_LABEL_CHARS}"
            )));
        }
        let labels = finish_labels(cursor, labels)?;
        self.separator(cursor, "expected a space before the exemplar value")?;
        let value = cursor.float("exemplar value")?;
        let mut exemplar = ParsedExemplar {
            labels,
            value,
            timestamp_ms: None,
        };
        if cursor.at_end() {
            return Ok(exemplar);
        }
        self.separator(cursor, "expected a space after the exemplar value")?;
        exemplar.timestamp_ms = Some(self.timestamp(cursor)?);
        if !cursor.at_end() {
            return Err(cursor.error("expected the end of the line after the exemplar"));
        }
        Ok(exemplar)
    }

    /// `{name="value",...}`, appending to `labels`.
    fn label_set(&self, cursor: &mut Cursor<'_>, labels: &mut Vec<Label>) -> Result<()> {
        let lenient = self.format == Format::PrometheusText;
        cursor.bump('{');
        loop {
            if lenient {
                cursor.skip_blanks();
            }
            if cursor.eat_char('}') {
                return Ok(());
            }
            let name = cursor
                .label_name()
                .ok_or_else(|| cursor.error("expected a label name"))?;
            if lenient {
                cursor.skip_blanks();
            }
            if !cursor.eat_char('=') {
                return Err(cursor.error("expected '=' after the label name"));
            }
            if lenient {
                cursor.skip_blanks();
            }
            let value = cursor.label_value()?;
            labels.push(Label::new(name, value));
            if lenient {
                cursor.skip_blanks();
            }
            if cursor.eat_char(',') {
                continue;
            }
            // Prometheus text also accepts label pairs separated by blanks only.
            if lenient && cursor.peek().is_some_and(|c| c != '}') {
                continue;
            }
            if cursor.eat_char('}') {
                return Ok(());
            }
            return Err(cursor.error("expected ',' or '}' after the label value"));
        }
    }
}

/// Sorts the pairs into a label set, refusing a repeated name. Empty values are
/// dropped (Prometheus treats them as absent).
fn finish_labels(cursor: &Cursor<'_>, labels: Vec<Label>) -> Result<Labels> {
    Labels::try_from_untrusted(labels).or_else(|e| match e {
        sightline_model::Error::EmptyLabelSet => Ok(Labels::empty()),
        sightline_model::Error::DuplicateLabelName { name } => {
            Err(cursor.error(&format!("label name {name:?} is not unique")))
        }
        other => Err(cursor.error(&other.to_string())),
    })
}

/// Float seconds to integer milliseconds, `None` when not finite or out of range.
fn seconds_to_millis(seconds: f64) -> Option<i64> {
    let millis = (seconds * 1000.0).round();
    if !millis.is_finite() || millis < i64::MIN as f64 || millis >= i64::MAX as f64 {
        return None;
    }
    Some(millis as i64)
}

/// Escapes a label value for the text formats (`\\`, `\"`, `\n`).
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out
}
