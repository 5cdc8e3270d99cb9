//! Runs eval cases against the engine and compares results the way Prometheus'
//! `promqltest/test.go` does.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::time::{Duration, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr};

use sightline_model::Labels;
use sightline_promql::{Engine, EngineOptions, QueryResult, Value};

use crate::script::{Command, EvalCase, EvalTime, MessageMatch};
use crate::series::SeqValue;
use crate::store::{MemStore, Snapshot};

/// Wall-clock limit of one case (the engine's own timeout is lower).
const CASE_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Relative error allowed for sample values (promqltest `defaultEpsilon`).
const EPSILON: f64 = 0.000_001;

/// What kind of case this is, for separate pass rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Float,
    Histogram,
    /// `promql-parser` cannot parse the expression (and no failure is expected).
    Unparseable,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Result, failure and annotations all as expected.
    Pass,
    /// Result or failure as expected, but the warn/info expectations were not met.
    PassValueOnly(String),
    Fail(String),
}

#[derive(Debug, Clone)]
pub(crate) struct CaseResult {
    pub(crate) line: usize,
    pub(crate) expr: String,
    pub(crate) class: Class,
    pub(crate) outcome: Outcome,
}

/// `rollups`: see [`EngineOptions::rollups`]; both paths must pass the same cases.
fn engine(rollups: bool) -> Engine {
    Engine::new(EngineOptions {
        rollups,
        // promqltest's built-in suite runs with DefaultMaxSamplesPerQuery.
        max_samples: 10_000,
        timeout: Duration::from_secs(5),
        // promqltest's `NewTestEngine` sets `EnableDelayedNameRemoval: true`: every
        // built-in test file is written against delayed name removal.
        delayed_name_removal: true,
        ..EngineOptions::default()
    })
}

/// Runs every eval of a parsed script.
pub(crate) fn run_script(file: &str, commands: &[Command], rollups: bool) -> Vec<CaseResult> {
    let engine = engine(rollups);
    let mut store = MemStore::default();
    let mut snapshot = Arc::new(Snapshot::new(&store));
    let mut results = Vec::new();
    for command in commands {
        match command {
            Command::Clear => {
                store = MemStore::default();
                snapshot = Arc::new(Snapshot::new(&store));
            }
            Command::Load {
                interval_ms,
                with_nhcb,
                series,
            } => {
                store.load(*interval_ms, *with_nhcb, series);
                snapshot = Arc::new(Snapshot::new(&store));
            }
            Command::BadEval { line, error } => results.push(CaseResult {
                line: *line,
                expr: String::new(),
                class: Class::Float,
                outcome: Outcome::Fail(format!("test file not understood by the runner: {error}")),
            }),
            Command::Eval(case) => {
                let class = classify(file, case, &store);
                let outcome = run_with_limit(&engine, &snapshot, case);
                results.push(CaseResult {
                    line: case.line,
                    expr: case.expr.clone(),
                    class,
                    outcome,
                });
            }
        }
    }
    results
}

fn classify(file: &str, case: &EvalCase, store: &MemStore) -> Class {
    let parsed = promql_parser::parser::parse(&case.expr);
    match parsed {
        Err(_) if case.fail.is_none() => Class::Unparseable,
        Err(_) => Class::Float,
        Ok(expr) => {
            if file == "native_histograms.test"
                || case.expected.has_histogram()
                || store.selects_histograms(&expr)
            {
                Class::Histogram
            } else {
                Class::Float
            }
        }
    }
}

/// Runs one case on a worker thread: a panic is caught and reported, a hang is
/// abandoned after [`CASE_TIME_LIMIT`].
fn run_with_limit(engine: &Engine, snapshot: &Arc<Snapshot>, case: &EvalCase) -> Outcome {
    let (sender, receiver) = mpsc::channel();
    let engine = engine.clone();
    let snapshot = Arc::clone(snapshot);
    let case = case.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("case-{}", case.line))
        .spawn(move || {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                run_case(&engine, snapshot.as_ref(), &case)
            }))
            .unwrap_or_else(|payload| {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_else(|| "non-string panic".to_string());
                Outcome::Fail(format!("engine panicked: {message}"))
            });
            let _ = sender.send(outcome);
        });
    if let Err(error) = spawned {
        return Outcome::Fail(format!("could not spawn a case thread: {error}"));
    }
    match receiver.recv_timeout(CASE_TIME_LIMIT) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Fail(format!(
            "case exceeded {}s and was abandoned",
            CASE_TIME_LIMIT.as_secs()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Outcome::Fail("case thread died".into()),
    }
}

fn run_case(engine: &Engine, store: &Snapshot, case: &EvalCase) -> Outcome {
    match case.time {
        EvalTime::Range { start, end, step } => {
            let result = engine.range_query(store, &case.expr, start, end, step);
            let checked = check_result(case, result);
            match checked {
                Checked::Done(outcome) => outcome,
                Checked::Value(value, annotations) => match compare(case, &value, start, step, end)
                {
                    Err(error) => Outcome::Fail(error),
                    Ok(()) => annotations,
                },
            }
        }
        EvalTime::Instant { at } => {
            let outcome = run_instant(engine, store, case, &case.expr, at);
            if matches!(outcome, Outcome::Fail(_)) {
                return outcome;
            }
            // test.go re-runs instant cases with every selector pinned by `@` to the
            // evaluation time, at other evaluation times; the result must not change.
            let Some((pinned, times)) = at_modifier_variants(&case.expr, at) else {
                return outcome;
            };
            for time in times {
                if let Outcome::Fail(error) = run_instant(engine, store, case, &pinned, time) {
                    return Outcome::Fail(format!("@ variant `{pinned}` at {time}ms: {error}"));
                }
            }
            outcome
        }
    }
}

/// Functions whose result depends on the evaluation time even with `@` arguments
/// (Prometheus' `AtModifierUnsafeFunctions`).
const AT_MODIFIER_UNSAFE_FUNCTIONS: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// `atModifierTestCases` of test.go: the expression with `@ <at>` on every selector
/// and subquery (not inside a subquery), and the times to evaluate it at. `None` when
/// test.go skips them, or when the expression already has an `@` (promql-parser
/// cannot print negative `@` times back, so such cases are left to the plain run).
fn at_modifier_variants(expr: &str, at: i64) -> Option<(String, Vec<i64>)> {
    if expr.contains('@') || at < 0 {
        return None;
    }
    let mut parsed = promql_parser::parser::parse(expr).ok()?;
    let pin = AtModifier::At(UNIX_EPOCH + Duration::from_millis(at.unsigned_abs()));
    let mut unsafe_call = false;
    pin_selectors(&mut parsed, &pin, &mut unsafe_call);
    if unsafe_call {
        return None;
    }
    let text = parsed.to_string();
    // A printing quirk of promql-parser must not count against the engine.
    promql_parser::parser::parse(&text).ok()?;
    let times = if at == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * at, 0, at / 5, at, 10 * at]
    };
    Some((text, times))
}

fn pin_selectors(expr: &mut Expr, pin: &AtModifier, unsafe_call: &mut bool) {
    match expr {
        Expr::Aggregate(a) => {
            pin_selectors(&mut a.expr, pin, unsafe_call);
            if let Some(param) = &mut a.param {
                pin_selectors(param, pin, unsafe_call);
            }
        }
        Expr::Unary(u) => pin_selectors(&mut u.expr, pin, unsafe_call),
        Expr::Binary(b) => {
            pin_selectors(&mut b.lhs, pin, unsafe_call);
            pin_selectors(&mut b.rhs, pin, unsafe_call);
        }
        Expr::Paren(p) => pin_selectors(&mut p.expr, pin, unsafe_call),
        // Selectors inside a subquery keep their times, as in test.go.
        Expr::Subquery(s) => {
            if s.at.is_none() {
                s.at = Some(pin.clone());
            }
        }
        Expr::VectorSelector(v) => {
            if v.at.is_none() {
                v.at = Some(pin.clone());
            }
        }
        Expr::MatrixSelector(m) => {
            if m.vs.at.is_none() {
                m.vs.at = Some(pin.clone());
            }
        }
        Expr::Call(c) => {
            *unsafe_call |= AT_MODIFIER_UNSAFE_FUNCTIONS.contains(&c.func.name);
            for arg in &mut c.args.args {
                pin_selectors(arg, pin, unsafe_call);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn run_instant(engine: &Engine, store: &Snapshot, case: &EvalCase, expr: &str, at: i64) -> Outcome {
    let (start, step, end) = match case.range_vector {
        Some((start, end, step)) => (start, step, end),
        None => (at, 0, at),
    };
    let result = engine.instant_query(store, expr, at);
    let (value, annotations) = match check_result(case, result) {
        Checked::Done(outcome) => return outcome,
        Checked::Value(value, annotations) => (value, annotations),
    };
    if let Err(error) = compare(case, &value, start, step, end) {
        return Outcome::Fail(error);
    }
    if case.exclude_from_range_query || case.ordered || uses_query_context_functions(expr) {
        return annotations;
    }
    // Prometheus also checks the same result in range mode, at the middle step.
    let ranged = match engine.range_query(store, expr, at - 60_000, at + 60_000, 60_000) {
        Ok(result) => result.value,
        Err(error) => return Outcome::Fail(format!("range mode failed: {error}")),
    };
    let Value::Matrix(matrix) = ranged else {
        return Outcome::Fail(format!("range mode returned a {}", ranged.type_name()));
    };
    if let Err(error) = assert_sorted(&matrix) {
        return Outcome::Fail(format!("range mode: {error}"));
    }
    let picked: Vec<sightline_promql::VectorSample> = matrix
        .iter()
        .filter_map(|series| {
            let point = series.points.iter().find(|p| p.t == at)?;
            Some(sightline_promql::VectorSample {
                labels: series.labels.clone(),
                t: point.t,
                v: point.v,
            })
        })
        .collect();
    let as_value = match value {
        Value::Scalar { .. } => match picked.first() {
            Some(sample) => Value::Scalar { t: at, v: sample.v },
            None => return Outcome::Fail("range mode returned no point for a scalar".into()),
        },
        _ => Value::Vector(picked),
    };
    match compare(case, &as_value, start, step, end) {
        Ok(()) => annotations,
        Err(error) => Outcome::Fail(format!("range mode: {error}")),
    }
}

fn uses_query_context_functions(expr: &str) -> bool {
    ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| expr.contains(f))
}

enum Checked {
    Done(Outcome),
    /// The value to compare and the outcome if it compares equal.
    Value(Value, Outcome),
}

fn check_result(case: &EvalCase, result: sightline_promql::Result<QueryResult>) -> Checked {
    let result = match result {
        Err(error) => {
            let Some(expected) = &case.fail else {
                return Checked::Done(Outcome::Fail(format!("unexpected error: {error}")));
            };
            let message = error.to_string();
            if expected.matches(&message) {
                return Checked::Done(Outcome::Pass);
            }
            return Checked::Done(Outcome::Fail(format!(
                "error {message:?} does not match the expected one"
            )));
        }
        Ok(result) => result,
    };
    if case.fail.is_some() {
        return Checked::Done(Outcome::Fail("expected an error, got none".into()));
    }
    let annotations = match check_annotations(case, &result.warnings, &result.infos) {
        Ok(()) => Outcome::Pass,
        Err(error) => Outcome::PassValueOnly(error),
    };
    Checked::Value(result.value, annotations)
}

fn check_annotations(case: &EvalCase, warnings: &[String], infos: &[String]) -> Result<(), String> {
    if case.legacy_warn && warnings.is_empty() {
        return Err("expected warnings, got none".into());
    }
    if case.legacy_info && infos.is_empty() {
        return Err("expected info annotations, got none".into());
    }
    check_annotations_of(&case.warn, warnings, "warn")?;
    check_annotations_of(&case.info, infos, "info")?;
    if case.no_warn && !warnings.is_empty() {
        return Err(format!("unexpected warnings: {warnings:?}"));
    }
    if case.no_info && !infos.is_empty() {
        return Err(format!("unexpected infos: {infos:?}"));
    }
    Ok(())
}

fn check_annotations_of(
    expected: &[MessageMatch],
    actual: &[String],
    kind: &str,
) -> Result<(), String> {
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {kind} annotations, got none"));
    }
    for matcher in expected {
        if !actual.iter().any(|a| matcher.matches(a)) {
            return Err(format!(
                "no {kind} annotation matches {matcher:?}; got {actual:?}"
            ));
        }
    }
    for annotation in actual {
        if !expected.iter().any(|m| m.matches(annotation)) {
            return Err(format!("unexpected {kind} annotation {annotation:?}"));
        }
    }
    Ok(())
}

pub(crate) use sightline_promql::almost_equal;

fn assert_sorted(matrix: &[sightline_promql::Series]) -> Result<(), String> {
    for pair in matrix.windows(2) {
        if pair[0].labels > pair[1].labels {
            return Err(format!(
                "matrix not sorted by labels: {} before {}",
                pair[0].labels, pair[1].labels
            ));
        }
    }
    Ok(())
}

fn expected_labels(case: &EvalCase, labels: &Labels) -> Result<(usize, Vec<SeqValue>), String> {
    case.expected
        .series
        .get(labels)
        .cloned()
        .ok_or_else(|| format!("unexpected metric {labels} in result"))
}

/// `compareResult` of test.go.
fn compare(case: &EvalCase, value: &Value, start: i64, step: i64, end: i64) -> Result<(), String> {
    let expected = &case.expected;
    match value {
        Value::Matrix(matrix) => {
            if case.ordered {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if expected.scalar.is_some() {
                return Err("expected scalar result, but got a matrix".into());
            }
            assert_sorted(matrix)?;
            let mut seen = 0;
            for series in matrix {
                let (_, values) = expected_labels(case, &series.labels)?;
                seen += 1;
                let mut expected_points = Vec::new();
                for (index, value) in values.iter().enumerate() {
                    let t = start + index as i64 * step;
                    if t > end {
                        return Err(format!(
                            "expected {} points for {}, more than the range holds",
                            values.len(),
                            series.labels
                        ));
                    }
                    match value {
                        SeqValue::Float(v) => expected_points.push((t, *v)),
                        SeqValue::Histogram => {
                            return Err(format!("expected histogram points for {}", series.labels));
                        }
                        SeqValue::Omitted => {}
                    }
                }
                if expected_points.len() != series.points.len() {
                    return Err(format!(
                        "expected {} points for {}, got {:?}",
                        expected_points.len(),
                        series.labels,
                        series.points.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>()
                    ));
                }
                for ((t, v), point) in expected_points.iter().zip(&series.points) {
                    if *t != point.t {
                        return Err(format!(
                            "expected timestamp {t} for {}, got {}",
                            series.labels, point.t
                        ));
                    }
                    if !almost_equal(point.v, *v, EPSILON) {
                        return Err(format!(
                            "expected {v} at t={t} for {}, got {}",
                            series.labels, point.v
                        ));
                    }
                }
            }
            if seen != expected.series.len() {
                let missing: Vec<String> = expected
                    .series
                    .keys()
                    .filter(|l| !matrix.iter().any(|s| &s.labels == *l))
                    .map(ToString::to_string)
                    .collect();
                return Err(format!("expected metrics not found: {missing:?}"));
            }
            Ok(())
        }
        Value::Vector(vector) => {
            if expected.scalar.is_some() {
                return Err("expected scalar result, but got a vector".into());
            }
            let mut seen = std::collections::BTreeSet::new();
            for (index, sample) in vector.iter().enumerate() {
                let (position, values) = expected_labels(case, &sample.labels)?;
                if case.ordered && position != index + 1 {
                    return Err(format!(
                        "expected {} at position {position}, was at {}",
                        sample.labels,
                        index + 1
                    ));
                }
                let expected_value = match values.first() {
                    Some(SeqValue::Float(v)) => *v,
                    Some(SeqValue::Histogram) => {
                        return Err(format!(
                            "expected a histogram for {}, got float {}",
                            sample.labels, sample.v
                        ));
                    }
                    Some(SeqValue::Omitted) | None => 0.0,
                };
                if !almost_equal(expected_value, sample.v, EPSILON) {
                    return Err(format!(
                        "expected {expected_value} for {}, got {}",
                        sample.labels, sample.v
                    ));
                }
                seen.insert(sample.labels.clone());
            }
            if seen.len() != expected.series.len() {
                let missing: Vec<String> = expected
                    .series
                    .keys()
                    .filter(|l| !seen.contains(*l))
                    .map(ToString::to_string)
                    .collect();
                return Err(format!("expected metrics not found: {missing:?}"));
            }
            Ok(())
        }
        Value::Scalar { v, .. } => {
            let Some(expected_value) = expected.scalar else {
                return Err(format!("expected vector or matrix result, got scalar {v}"));
            };
            if !almost_equal(expected_value, *v, EPSILON) {
                return Err(format!("expected scalar {expected_value}, got {v}"));
            }
            Ok(())
        }
        Value::String { s, .. } => {
            let expected_string = expected.string.as_deref().unwrap_or("");
            if expected_string != s {
                return Err(format!("expected string {expected_string:?}, got {s:?}"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_modifier_variants_pin_selectors_like_test_go() {
        let (text, times) = at_modifier_variants("sum(rate(foo[5m])) + bar", 60_000).unwrap();
        assert_eq!(text.matches("@ 60.000").count(), 2, "{text}");
        assert_eq!(times, vec![-600_000, 0, 12_000, 60_000, 600_000]);
        let (text, times) = at_modifier_variants("max_over_time(rate(foo[1m])[5m:1m])", 0).unwrap();
        assert_eq!(text.matches('@').count(), 1, "{text}");
        assert_eq!(times, vec![-1000, 0, 1000]);
        assert!(at_modifier_variants("timestamp(foo)", 1000).is_none());
        assert!(at_modifier_variants("foo @ 100", 1000).is_none());
    }

    #[test]
    fn almost_equal_is_relative() {
        assert!(almost_equal(f64::NAN, f64::NAN, EPSILON));
        assert!(almost_equal(1.0, 1.0 + 1e-9, EPSILON));
        assert!(!almost_equal(1.0, 1.0001, EPSILON));
        assert!(!almost_equal(0.0, 1e-300, EPSILON));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY, EPSILON));
    }
}
