//! An in-memory [`Queryable`] built from `load` commands.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::Expr;
use sightline_model::Labels;
use sightline_promql::{Matcher, Millis, Queryable, StoredSeries};

use crate::series::{SeqValue, SeriesDesc};

/// Series loaded so far (since the last `clear`), float samples by time, plus the
/// timestamps of native histogram samples (which the engine cannot see).
#[derive(Debug, Default, Clone)]
pub(crate) struct MemStore {
    floats: BTreeMap<Labels, BTreeMap<Millis, f64>>,
    histograms: BTreeMap<Labels, BTreeSet<Millis>>,
}

impl MemStore {
    pub(crate) fn load(&mut self, interval_ms: i64, with_nhcb: bool, series: &[SeriesDesc]) {
        for desc in series {
            for (index, value) in desc.values.iter().enumerate() {
                let t = index as i64 * interval_ms;
                match value {
                    SeqValue::Omitted => {}
                    SeqValue::Float(v) => {
                        self.floats
                            .entry(desc.labels.clone())
                            .or_default()
                            .insert(t, *v);
                    }
                    SeqValue::Histogram => {
                        self.histograms
                            .entry(desc.labels.clone())
                            .or_default()
                            .insert(t);
                    }
                }
            }
            if with_nhcb {
                self.add_nhcb_shadow(interval_ms, desc);
            }
        }
    }

    /// `load_with_nhcb` also writes a native histogram series (the classic one's base
    /// name, without `le`); record its sample times so queries on it count as
    /// native-histogram cases.
    fn add_nhcb_shadow(&mut self, interval_ms: i64, desc: &SeriesDesc) {
        let Some(name) = desc.labels.metric_name() else {
            return;
        };
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix));
        let Some(base) = base else { return };
        let mut builder = desc.labels.to_builder();
        builder.set("__name__", base).delete("le");
        let shadow = builder.build();
        for (index, value) in desc.values.iter().enumerate() {
            if matches!(value, SeqValue::Float(_)) {
                self.histograms
                    .entry(shadow.clone())
                    .or_default()
                    .insert(index as i64 * interval_ms);
            }
        }
    }

    /// Whether any vector selector of `expr` selects a series holding native histograms.
    pub(crate) fn selects_histograms(&self, expr: &Expr) -> bool {
        let mut found = false;
        visit_selectors(expr, &mut |selector| {
            found = found
                || self.histograms.keys().any(|labels| {
                    let name_ok = selector
                        .name
                        .as_deref()
                        .is_none_or(|name| labels.metric_name() == Some(name));
                    let value = |name: &str| labels.get(name).unwrap_or("").to_string();
                    let and_ok = selector
                        .matchers
                        .matchers
                        .iter()
                        .all(|m| m.is_match(&value(&m.name)));
                    let or_ok = selector.matchers.or_matchers.is_empty()
                        || selector
                            .matchers
                            .or_matchers
                            .iter()
                            .any(|group| group.iter().all(|m| m.is_match(&value(&m.name))));
                    name_ok && and_ok && or_ok
                });
        });
        found
    }
}

fn visit_selectors(expr: &Expr, visit: &mut dyn FnMut(&promql_parser::parser::VectorSelector)) {
    match expr {
        Expr::Aggregate(a) => {
            visit_selectors(&a.expr, visit);
            if let Some(param) = &a.param {
                visit_selectors(param, visit);
            }
        }
        Expr::Unary(u) => visit_selectors(&u.expr, visit),
        Expr::Binary(b) => {
            visit_selectors(&b.lhs, visit);
            visit_selectors(&b.rhs, visit);
        }
        Expr::Paren(p) => visit_selectors(&p.expr, visit),
        Expr::Subquery(s) => visit_selectors(&s.expr, visit),
        Expr::VectorSelector(v) => visit(v),
        Expr::MatrixSelector(m) => visit(&m.vs),
        Expr::Call(c) => {
            for arg in &c.args.args {
                visit_selectors(arg, visit);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The read-only view handed to the engine.
#[derive(Debug)]
pub(crate) struct Snapshot {
    series: Vec<StoredSeries>,
}

impl Snapshot {
    pub(crate) fn new(store: &MemStore) -> Snapshot {
        let series = store
            .floats
            .iter()
            .map(|(labels, samples)| StoredSeries {
                labels: labels.clone(),
                samples: samples.iter().map(|(t, v)| (*t, *v)).collect(),
            })
            .collect();
        Snapshot { series }
    }
}

impl Queryable for Snapshot {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
    ) -> sightline_promql::Result<Vec<StoredSeries>> {
        let mut out = Vec::new();
        for series in &self.series {
            let matched = matchers
                .iter()
                .all(|m| m.matches(series.labels.get(m.name()).unwrap_or("")));
            if !matched {
                continue;
            }
            let samples: Vec<(Millis, f64)> = series
                .samples
                .iter()
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .copied()
                .collect();
            if samples.is_empty() {
                continue;
            }
            out.push(StoredSeries {
                labels: series.labels.clone(),
                samples,
            });
        }
        Ok(out)
    }
}
