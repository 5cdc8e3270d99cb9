//! Binary operators: arithmetic, comparison and set operators between scalars and
//! vectors, with `on`/`ignoring` matching and `group_left`/`group_right`.

use std::collections::{HashMap, HashSet};

use promql_parser::label::Labels as ParserLabels;
use promql_parser::parser::token::TokenType;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use sightline_model::{Labels, METRIC_NAME_LABEL};

use super::{
    DROP_NAME_MARKER, Evaluator, StepValue, check_unique_labelsets, drop_name_or_mark,
    labels_string,
};
use crate::memo::{LabelMemo, PairMemo};
use crate::value::VectorSample;
use crate::{Error, Millis, Result};

/// What one binary operator node derives from label sets, made once per input set
/// for the whole query (see [`crate::memo`]).
#[derive(Debug, Default)]
pub(super) struct BinaryMemo {
    /// Matching signature hash per input set (both sides).
    signatures: LabelMemo<u64>,
    /// Result labels per (many side, one side) pair of a vector/vector operation.
    results: PairMemo<Labels>,
    /// Labels without the metric name, for a vector/scalar operation that drops it.
    without_name: LabelMemo<Labels>,
}

impl BinaryMemo {
    fn signature(&mut self, labels: &Labels, matching: &Matching<'_>) -> u64 {
        self.signatures
            .get_or_insert_with(labels, |labels| signature_hash(labels, matching))
    }
}

/// How the two sides of a vector/vector operation are matched.
#[derive(Debug)]
struct Matching<'e> {
    card: &'e VectorMatchCardinality,
    /// `on(...)` when true, `ignoring(...)` otherwise.
    on: bool,
    names: &'e [String],
    include: &'e [String],
    /// Set operators match regardless of `__type__`/`__unit__` (Prometheus 3).
    set_operator: bool,
    /// Delayed name removal is on.
    delayed: bool,
}

impl Matching<'_> {
    /// Whether `ignoring` matching always leaves out label `name`.
    fn ignored(&self, name: &str) -> bool {
        if name == DROP_NAME_MARKER {
            return true;
        }
        if self.set_operator {
            METADATA_LABELS.contains(&name)
        } else {
            name == METRIC_NAME_LABEL
        }
    }
}

/// Labels `ignoring` matching never matches on: the metric name and its metadata.
const METADATA_LABELS: [&str; 3] = [METRIC_NAME_LABEL, "__type__", "__unit__"];

const ONE_TO_ONE: VectorMatchCardinality = VectorMatchCardinality::OneToOne;

fn matching_of(expr: &BinaryExpr, delayed: bool) -> Matching<'_> {
    let empty: &[String] = &[];
    let Some(modifier) = &expr.modifier else {
        return Matching {
            card: &ONE_TO_ONE,
            on: false,
            names: empty,
            include: empty,
            set_operator: expr.op.is_set_operator(),
            delayed,
        };
    };
    let (on, names) = match &modifier.matching {
        Some(LabelModifier::Include(l)) => (true, l.labels.as_slice()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.as_slice()),
        None => (false, empty),
    };
    let include = modifier
        .card
        .labels()
        .map(|l: &ParserLabels| l.labels.as_slice())
        .unwrap_or(empty);
    Matching {
        card: &modifier.card,
        on,
        names,
        include,
        set_operator: expr.op.is_set_operator(),
        delayed,
    }
}

/// Whether a label takes part in matching.
fn is_matched_on(name: &str, matching: &Matching<'_>) -> bool {
    let listed = matching.names.iter().any(|n| n == name);
    if matching.on {
        listed
    } else {
        !listed && !matching.ignored(name)
    }
}

/// A 64-bit hash of the labels a sample is matched on. Prometheus matches on such
/// hashes too (`labels.HashForLabels`); building the signature's label set for every
/// sample at every step was most of a vector-vector operation's time.
fn signature_hash(labels: &Labels, matching: &Matching<'_>) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for label in labels.iter().filter(|l| is_matched_on(&l.name, matching)) {
        hasher.update(label.name.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(label.value.as_bytes());
        hasher.update(&[0xff]);
    }
    hasher.digest()
}

/// The labels a sample is matched on (for messages; matching uses [`signature_hash`]).
fn signature(labels: &Labels, matching: &Matching<'_>) -> Labels {
    if matching.on {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .filter(|l| matching.names.contains(&l.name))
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        Labels::from_pairs(pairs)
    } else {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .filter(|l| !matching.ignored(&l.name) && !matching.names.contains(&l.name))
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        Labels::from_pairs(pairs)
    }
}

fn is_comparison(op: TokenType) -> bool {
    op.is_comparison_operator()
}

fn drops_name(op: TokenType) -> bool {
    matches!(
        op.id(),
        T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2
    )
}

/// Applies `op`: (value, keep). Comparisons return the left value and whether it holds.
fn apply(op: TokenType, lhs: f64, rhs: f64) -> Result<(f64, bool)> {
    Ok(match op.id() {
        T_ADD => (lhs + rhs, true),
        T_SUB => (lhs - rhs, true),
        T_MUL => (lhs * rhs, true),
        T_DIV => (lhs / rhs, true),
        T_POW => (lhs.powf(rhs), true),
        T_MOD => (lhs % rhs, true),
        T_ATAN2 => (lhs.atan2(rhs), true),
        T_EQLC => (lhs, lhs == rhs),
        T_NEQ => (lhs, lhs != rhs),
        T_GTR => (lhs, lhs > rhs),
        T_LSS => (lhs, lhs < rhs),
        T_GTE => (lhs, lhs >= rhs),
        T_LTE => (lhs, lhs <= rhs),
        _ => {
            return Err(Error::Execution(format!(
                "operator \"{op}\" not allowed here"
            )));
        }
    })
}

impl Evaluator<'_> {
    pub(crate) fn eval_binary(&mut self, expr: &BinaryExpr, t: Millis) -> Result<StepValue> {
        let return_bool = expr.modifier.as_ref().is_some_and(|m| m.return_bool);
        let op = expr.op;
        let lhs = self.eval(&expr.lhs, t)?;
        let rhs = self.eval(&expr.rhs, t)?;
        let delayed = self.delayed;
        let memo = self
            .binary_memos
            .entry(std::ptr::from_ref(expr) as usize)
            .or_default();
        match (lhs, rhs) {
            (StepValue::Scalar(l), StepValue::Scalar(r)) => {
                let (v, keep) = apply(op, l, r)?;
                if is_comparison(op) {
                    return Ok(StepValue::Scalar(if keep { 1.0 } else { 0.0 }));
                }
                Ok(StepValue::Scalar(v))
            }
            (StepValue::Vector(l), StepValue::Scalar(r)) => {
                let out = vector_scalar(op, l, r, false, return_bool, t, delayed, memo)?;
                Ok(StepValue::Vector(out))
            }
            (StepValue::Scalar(l), StepValue::Vector(r)) => {
                let out = vector_scalar(op, r, l, true, return_bool, t, delayed, memo)?;
                Ok(StepValue::Vector(out))
            }
            (StepValue::Vector(l), StepValue::Vector(r)) => {
                let matching = matching_of(expr, delayed);
                let out = match op.id() {
                    T_LAND => vector_filter(l, r, &matching, true, memo),
                    T_LOR => vector_or(l, r, &matching, memo),
                    T_LUNLESS => vector_filter(l, r, &matching, false, memo),
                    _ => vector_vector(op, l, r, &matching, return_bool, t, memo)?,
                };
                let out: Vec<VectorSample> =
                    out.into_iter().map(|s| VectorSample { t, ..s }).collect();
                self.check_samples(out.len())?;
                Ok(StepValue::Vector(out))
            }
            (l, r) => Err(Error::Execution(format!(
                "binary operator \"{op}\" not allowed between {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the operation's parts, each used once; a struct would only rename them"
)]
fn vector_scalar(
    op: TokenType,
    vector: Vec<VectorSample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    t: Millis,
    delayed: bool,
    memo: &mut BinaryMemo,
) -> Result<Vec<VectorSample>> {
    if op.is_set_operator() {
        return Err(Error::Execution(format!(
            "set operator \"{op}\" not allowed in binary scalar expression"
        )));
    }
    let mut out = Vec::with_capacity(vector.len());
    for sample in vector {
        let (l, r) = if swap {
            (scalar, sample.v)
        } else {
            (sample.v, scalar)
        };
        let (mut value, mut keep) = apply(op, l, r)?;
        if is_comparison(op) && swap {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if !keep {
            continue;
        }
        let labels = if drops_name(op) || return_bool {
            memo.without_name
                .get_or_insert_with(&sample.labels, |l| drop_name_or_mark(l, delayed))
        } else {
            sample.labels
        };
        out.push(VectorSample {
            labels,
            t,
            v: value,
        });
    }
    check_unique_labelsets_if(&out, !delayed && (drops_name(op) || return_bool))?;
    Ok(out)
}

fn check_unique_labelsets_if(out: &[VectorSample], dropped: bool) -> Result<()> {
    if dropped {
        check_unique_labelsets(out)
    } else {
        Ok(())
    }
}

/// `and` (keep the left samples whose signature is on the right) and `unless`
/// (keep those whose signature is not).
fn vector_filter(
    lhs: Vec<VectorSample>,
    rhs: Vec<VectorSample>,
    matching: &Matching<'_>,
    keep_matched: bool,
    memo: &mut BinaryMemo,
) -> Vec<VectorSample> {
    let right: HashSet<u64> = rhs
        .iter()
        .map(|s| memo.signature(&s.labels, matching))
        .collect();
    lhs.into_iter()
        .filter(|s| right.contains(&memo.signature(&s.labels, matching)) == keep_matched)
        .collect()
}

fn vector_or(
    lhs: Vec<VectorSample>,
    rhs: Vec<VectorSample>,
    matching: &Matching<'_>,
    memo: &mut BinaryMemo,
) -> Vec<VectorSample> {
    let left: HashSet<u64> = lhs
        .iter()
        .map(|s| memo.signature(&s.labels, matching))
        .collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&memo.signature(&s.labels, matching))),
    );
    out
}

fn vector_vector(
    op: TokenType,
    lhs: Vec<VectorSample>,
    rhs: Vec<VectorSample>,
    matching: &Matching<'_>,
    return_bool: bool,
    t: Millis,
    memo: &mut BinaryMemo,
) -> Result<Vec<VectorSample>> {
    if matches!(matching.card, VectorMatchCardinality::ManyToMany) {
        return Err(Error::Execution(
            "many-to-many only allowed for set operators".into(),
        ));
    }
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let one_to_many = matches!(matching.card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<u64, VectorSample> = HashMap::with_capacity(one.len());
    for sample in one {
        let sig = memo.signature(&sample.labels, matching);
        if let Some(duplicate) = one_by_sig.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                labels_string(&signature(&sample.labels, matching)),
                labels_string(&sample.labels),
                labels_string(&duplicate.labels),
            )));
        }
        one_by_sig.insert(sig, sample);
    }
    let one_to_one = matches!(matching.card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<u64, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for sample in many {
        let sig = memo.signature(&sample.labels, matching);
        let Some(other) = one_by_sig.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (other.v, sample.v)
        } else {
            (sample.v, other.v)
        };
        let (mut value, keep) = apply(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = memo
            .results
            .get_or_insert_with(&sample.labels, &other.labels, |many, one| {
                let labels = result_labels(many, one, op, matching);
                if return_bool {
                    drop_name_or_mark(&labels, matching.delayed)
                } else {
                    labels
                }
            });
        if one_to_one {
            if matched.contains_key(&sig) {
                return Err(Error::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            matched.insert(sig, HashSet::new());
        } else {
            let inserted = matched.entry(sig).or_default();
            if !inserted.insert(labels.clone()) {
                return Err(Error::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
        }
        out.push(VectorSample {
            labels,
            t,
            v: value,
        });
    }
    Ok(out)
}

fn result_labels(many: &Labels, one: &Labels, op: TokenType, matching: &Matching<'_>) -> Labels {
    let mut builder = if drops_name(op) {
        drop_name_or_mark(many, matching.delayed).to_builder()
    } else {
        many.to_builder()
    };
    if matches!(matching.card, VectorMatchCardinality::OneToOne) {
        if matching.on {
            for label in many.iter() {
                if !matching.names.contains(&label.name) {
                    builder.delete(&label.name);
                }
            }
        } else {
            for name in matching.names {
                builder.delete(name);
            }
        }
    }
    for name in matching.include {
        match one.get(name) {
            Some(value) => builder.set(name.clone(), value),
            None => builder.delete(name),
        };
    }
    builder.build()
}
