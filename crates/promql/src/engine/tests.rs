//! Engine tests over a tiny in-memory store.

use super::*;
use crate::Matcher;

#[derive(Debug, Default)]
struct MemStore {
    series: Vec<StoredSeries>,
}

impl Queryable for MemStore {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: Millis,
        maxt: Millis,
    ) -> Result<Vec<StoredSeries>> {
        let mut out: Vec<StoredSeries> = self
            .series
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(m.name()).unwrap_or("")))
            })
            .map(|s| StoredSeries {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| *t >= mint && *t <= maxt)
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

fn series(pairs: &[(&str, &str)], samples: &[(Millis, f64)]) -> StoredSeries {
    StoredSeries {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples.to_vec(),
    }
}

/// `http_requests{job, instance}` every 10s from 0 to 600s with value = t/10 * k.
fn store() -> MemStore {
    let mut store = MemStore::default();
    for (job, instance, k) in [("api", "0", 1.0), ("api", "1", 2.0), ("web", "0", 3.0)] {
        let samples: Vec<(Millis, f64)> = (0..=60).map(|i| (i * 10_000, i as f64 * k)).collect();
        store.series.push(series(
            &[
                ("__name__", "http_requests_total"),
                ("job", job),
                ("instance", instance),
            ],
            &samples,
        ));
    }
    store.series.push(series(
        &[("__name__", "gauge"), ("job", "api")],
        &[
            (0, 5.0),
            (60_000, f64::from_bits(sightline_model::STALE_NAN_BITS)),
        ],
    ));
    store
}

fn instant(query: &str, t: Millis) -> Result<Value> {
    Engine::default()
        .instant_query(&store(), query, t)
        .map(|r| r.value)
}

fn vector(query: &str, t: Millis) -> Vec<(String, f64)> {
    match instant(query, t) {
        Ok(Value::Vector(samples)) => {
            let mut out: Vec<(String, f64)> = samples
                .into_iter()
                .map(|s| (labels_string(&s.labels), s.v))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{query}: expected vector, got {other:?}"),
    }
}

#[test]
fn selectors_lookback_and_staleness() {
    assert_eq!(
        vector("http_requests_total{job=\"api\",instance=\"0\"}", 105_000).len(),
        1
    );
    assert_eq!(
        vector("http_requests_total{job=\"api\",instance=\"0\"}", 105_000)[0].1,
        10.0
    );
    // Lookback is 5m: the last sample at 600s is visible until 900s exclusive.
    assert_eq!(vector("http_requests_total", 899_999).len(), 3);
    assert_eq!(vector("http_requests_total", 900_000).len(), 0);
    // A stale marker ends the series.
    assert_eq!(vector("gauge", 30_000).len(), 1);
    assert_eq!(vector("gauge", 61_000).len(), 0);
    // offset and @.
    assert_eq!(
        vector(
            "http_requests_total{instance=\"0\",job=\"api\"} offset 100s",
            200_000
        )[0]
        .1,
        10.0
    );
    assert_eq!(
        vector(
            "http_requests_total{instance=\"0\",job=\"api\"} @ 100",
            500_000
        )[0]
        .1,
        10.0
    );
    assert_eq!(
        vector(
            "http_requests_total{instance=\"0\",job=\"api\"} offset -100s",
            100_000
        )[0]
        .1,
        20.0
    );
}

#[test]
fn aggregations() {
    assert_eq!(
        vector("sum(http_requests_total)", 100_000),
        vec![("{}".into(), 60.0)]
    );
    assert_eq!(
        vector("sum by (job) (http_requests_total)", 100_000),
        vec![
            ("{job=\"api\"}".into(), 30.0),
            ("{job=\"web\"}".into(), 30.0)
        ]
    );
    assert_eq!(
        vector("count without (instance) (http_requests_total)", 100_000).len(),
        2
    );
    assert_eq!(vector("avg(http_requests_total)", 100_000)[0].1, 20.0);
    assert_eq!(vector("max(http_requests_total)", 100_000)[0].1, 30.0);
    assert_eq!(
        vector("quantile(0.5, http_requests_total)", 100_000)[0].1,
        20.0
    );
    assert_eq!(
        vector("quantile(2, http_requests_total)", 100_000)[0].1,
        f64::INFINITY
    );
    let top = vector("topk(1, http_requests_total)", 100_000);
    assert_eq!(top.len(), 1);
    assert!(top[0].0.contains("web"));
    assert_eq!(
        vector("count_values(\"v\", http_requests_total)", 100_000).len(),
        3
    );
    assert!((vector("stddev(http_requests_total)", 100_000)[0].1 - 8.16496580927726).abs() < 1e-9);
    // Found by the differential test: a value halfway between two shortest digit
    // strings gets Go's even digit in the label, not Rust's upper one.
    assert_eq!(
        vector("count_values(\"v\", vector(1406667743765118.25))", 0),
        vec![("{v=\"1406667743765118.2\"}".into(), 1.0)]
    );
}

#[test]
fn binary_operators() {
    let out = vector(
        "http_requests_total / ignoring(instance) group_left sum by (job) (http_requests_total)",
        100_000,
    );
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|(l, _)| !l.contains("__name__")));
    assert_eq!(vector("http_requests_total > 15", 100_000).len(), 2);
    assert!(
        vector("http_requests_total > 15", 100_000)[0]
            .0
            .contains("__name__")
    );
    assert_eq!(vector("http_requests_total > bool 15", 100_000).len(), 3);
    assert_eq!(
        vector("http_requests_total and on(job) gauge", 30_000).len(),
        2
    );
    assert_eq!(
        vector("http_requests_total unless on(job) gauge", 30_000).len(),
        1
    );
    assert_eq!(vector("gauge or http_requests_total", 30_000).len(), 4);
    assert_eq!(instant("2 ^ 3 + 1", 0), Ok(Value::Scalar { t: 0, v: 9.0 }));
    let err = instant("http_requests_total + on(job) http_requests_total", 100_000).unwrap_err();
    assert!(
        err.to_string()
            .contains("found duplicate series for the match group"),
        "{err}"
    );
    let err = instant(
        "sum by (job) (http_requests_total) + on(job) group_left http_requests_total",
        100_000,
    )
    .unwrap_err();
    assert!(err.to_string().contains("found duplicate series"), "{err}");
}

#[test]
fn range_query_and_subquery() {
    let result = Engine::default()
        .range_query(&store(), "sum(http_requests_total)", 0, 60_000, 30_000)
        .unwrap();
    let Value::Matrix(series) = result.value else {
        panic!("matrix expected")
    };
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].points,
        vec![
            Point { t: 0, v: 0.0 },
            Point { t: 30_000, v: 18.0 },
            Point { t: 60_000, v: 36.0 }
        ]
    );
    // Subquery at default 1m step over 5m: points at 60s..300s.
    match instant("http_requests_total{job=\"web\"}[5m:1m]", 300_000).unwrap() {
        Value::Matrix(m) => assert_eq!(m[0].points.len(), 5),
        other => panic!("{other:?}"),
    }
    let scalar = Engine::default()
        .range_query(&store(), "time()", 0, 20_000, 10_000)
        .unwrap();
    let Value::Matrix(series) = scalar.value else {
        panic!("matrix expected")
    };
    assert_eq!(series[0].points.len(), 3);
}

#[test]
fn engine_functions() {
    assert_eq!(vector("vector(1)", 0), vec![("{}".into(), 1.0)]);
    assert!(
        matches!(instant("scalar(http_requests_total)", 0), Ok(Value::Scalar { v, .. }) if v.is_nan())
    );
    assert_eq!(
        instant("scalar(gauge)", 0),
        Ok(Value::Scalar { t: 0, v: 5.0 })
    );
    assert_eq!(
        vector("timestamp(gauge)", 30_000),
        vec![("{job=\"api\"}".into(), 0.0)]
    );
    assert_eq!(
        vector("absent(nonexistent{job=\"x\",a=~\"b\"})", 0),
        vec![("{job=\"x\"}".into(), 1.0)]
    );
    assert!(vector("absent(gauge)", 0).is_empty());
    // Found by the differential test against Prometheus: parentheses around the
    // selector keep its labels (Prometheus unwraps function arguments).
    assert_eq!(
        vector("absent(((nonexistent{job=\"x\"})))", 0),
        vec![("{job=\"x\"}".into(), 1.0)]
    );
    assert_eq!(
        vector("absent(rate(nonexistent{job=\"x\"}[1m]))", 0),
        vec![("{}".into(), 1.0)]
    );
    assert_eq!(
        vector("absent_over_time(nonexistent{job=\"x\"}[1m])", 0),
        vec![("{job=\"x\"}".into(), 1.0)]
    );
    match instant("sort_desc(http_requests_total)", 100_000).unwrap() {
        Value::Vector(v) => assert_eq!(
            v.iter().map(|s| s.v).collect::<Vec<_>>(),
            vec![30.0, 20.0, 10.0]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits() {
    let engine = Engine::new(EngineOptions {
        max_samples: 2,
        ..EngineOptions::default()
    });
    let err = engine
        .instant_query(&store(), "http_requests_total", 100_000)
        .unwrap_err();
    assert!(matches!(err, Error::Limit(_)), "{err}");
    assert!(err.to_string().contains("query.max_samples"));
    let err = Engine::default()
        .range_query(&store(), "vector(1)", 0, 20_000_000, 1_000)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeded maximum resolution of 11,000 points"),
        "{err}"
    );
    let err = Engine::default()
        .range_query(&store(), "\"a\"", 0, 1, 1)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid expression type \"string\""),
        "{err}"
    );
    assert!(matches!(instant("sum(", 0), Err(Error::Parse(_))));
    assert_eq!(thousands(50_000_000), "50,000,000");
}

#[test]
fn untrusted_queries_do_not_panic() {
    for query in [
        "foo[5m:0s]",
        "rate(foo[5m:1s])",
        "topk(NaN, foo)",
        "quantile(NaN, foo)",
        "limit_ratio(5, http_requests_total)",
        "count_values(\"a b\", http_requests_total)",
        "http_requests_total @ 1e18",
        "http_requests_total offset -100000000000000000000s",
        "rate(http_requests_total[100000000000000000000s] @ -1e18)",
        "max_over_time(http_requests_total[1y:1y] offset -1e18)",
        "label_replace(http_requests_total, \"a\", \"$1\", \"job\", \"(.*)\")",
    ] {
        let _ = Engine::default().instant_query(&store(), query, 100_000);
        let _ = Engine::default().range_query(&store(), query, 0, 100_000, 10_000);
    }
}

#[test]
fn range_query_over_many_series_and_steps() {
    let mut store = MemStore::default();
    for i in 0..20 {
        let instance = i.to_string();
        let samples: Vec<(Millis, f64)> = (0..8640).map(|s| (s * 10_000, s as f64)).collect();
        store.series.push(series(
            &[("__name__", "c_total"), ("instance", instance.as_str())],
            &samples,
        ));
    }
    let started = std::time::Instant::now();
    let result = Engine::default()
        .range_query(
            &store,
            "sum(rate(c_total[5m]))",
            3_600_000,
            86_400_000,
            60_000,
        )
        .unwrap();
    let Value::Matrix(series) = result.value else {
        panic!("matrix expected")
    };
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].points.len(), 1381);
    assert!(series[0].points.iter().all(|p| (p.v - 2.0).abs() < 1e-9));
    let subquery = Engine::default()
        .range_query(
            &store,
            "max_over_time(sum(rate(c_total[5m]))[1h:1m])",
            3_600_000,
            86_400_000,
            60_000,
        )
        .unwrap();
    assert!(matches!(subquery.value, Value::Matrix(ref m) if m.len() == 1));
    eprintln!("range queries took {:?}", started.elapsed());
}

#[test]
fn delayed_name_removal() {
    let delayed = Engine::new(EngineOptions {
        delayed_name_removal: true,
        ..EngineOptions::default()
    });
    let query =
        "label_replace(rate(http_requests_total[1m]), \"n\", \"$1\", \"__name__\", \"(.+)\")";
    // Without the option the name is gone before label_replace sees it.
    let Ok(Value::Vector(eager)) = instant(query, 100_000) else {
        panic!("vector expected")
    };
    assert!(eager.iter().all(|s| s.labels.get("n").is_none()));
    let Value::Vector(out) = delayed
        .instant_query(&store(), query, 100_000)
        .unwrap()
        .value
    else {
        panic!("vector expected")
    };
    assert_eq!(out.len(), 3);
    assert!(
        out.iter()
            .all(|s| s.labels.get("n") == Some("http_requests_total")
                && s.labels.get("__name__").is_none()
                && s.labels.get(DROP_NAME_MARKER).is_none())
    );
    // Names are still dropped (and duplicates caught) at the end.
    let err = delayed.instant_query(
        &store(),
        "sum by (__name__) (rate(http_requests_total[1m]) or rate(gauge[1m]))",
        100_000,
    );
    assert!(err.is_ok());
    let Value::Vector(out) = delayed
        .instant_query(&store(), "-gauge", 30_000)
        .unwrap()
        .value
    else {
        panic!("vector expected")
    };
    assert_eq!(labels_string(&out[0].labels), "{job=\"api\"}");
}

/// A store of `n` series of one sample each at t = 0.
fn wide_store(n: usize) -> MemStore {
    let mut store = MemStore::default();
    for i in 0..n {
        let instance = i.to_string();
        store.series.push(series(
            &[("__name__", "wide"), ("instance", instance.as_str())],
            &[(0, 1.0), (10_000, 2.0)],
        ));
    }
    store
}

#[test]
fn one_step_over_many_series_stops_at_the_limits() {
    // The deadline is read while a selector walks its series, not only between
    // steps: an instant query has a single step.
    let engine = Engine::new(EngineOptions {
        timeout: std::time::Duration::ZERO,
        ..EngineOptions::default()
    });
    let err = engine
        .instant_query(&wide_store(1_000), "rate(wide[1m])", 20_000)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");

    // The sample limit stops a window part way, before all of it is copied.
    let engine = Engine::new(EngineOptions {
        max_samples: 300,
        ..EngineOptions::default()
    });
    let err = engine
        .instant_query(&wide_store(1_000), "rate(wide[1m])", 20_000)
        .unwrap_err();
    assert!(err.to_string().contains("query.max_samples"), "{err}");
    // Under the limits the same query works.
    let result = Engine::default()
        .instant_query(&wide_store(1_000), "count(rate(wide[1m]))", 20_000)
        .unwrap();
    assert!(matches!(result.value, Value::Vector(ref v) if v.len() == 1 && v[0].v == 1000.0));
}

#[test]
fn aggregations_over_range_functions_match_the_general_path() {
    // `+ 0` keeps the values but hides the call from the aggregation, so the right
    // side takes the general path (full labels, grouped inside the aggregation).
    for aggregation in [
        "sum",
        "avg",
        "max",
        "min",
        "count",
        "group",
        "stddev",
        "sum by (job)",
        "avg without (instance)",
        "max by (__name__, job)",
        "quantile(0.5,",
    ] {
        let open = match aggregation.strip_suffix(',') {
            Some(head) => format!("{head}, "),
            None => format!("{aggregation} ("),
        };
        let fast = format!("{open}(rate(http_requests_total[1m])))");
        let general = format!("{open}rate(http_requests_total[1m]) + 0)");
        let engine = Engine::default();
        let a = engine
            .range_query(&store(), &fast, 0, 600_000, 30_000)
            .unwrap();
        let b = engine
            .range_query(&store(), &general, 0, 600_000, 30_000)
            .unwrap();
        assert_eq!(format!("{:?}", a.value), format!("{:?}", b.value), "{fast}");
    }
    // Output labels that repeat after the name is dropped still fail, aggregated or not.
    let mut store = MemStore::default();
    for name in ["a_total", "b_total"] {
        store.series.push(series(
            &[("__name__", name), ("x", "1")],
            &[(0, 1.0), (30_000, 2.0), (60_000, 3.0)],
        ));
    }
    for query in [
        "sum(rate({__name__=~\"a_total|b_total\"}[1m]))",
        "rate({__name__=~\"a_total|b_total\"}[1m])",
    ] {
        let error = Engine::default()
            .range_query(&store, query, 0, 60_000, 30_000)
            .unwrap_err();
        assert!(
            error.to_string().contains("same labelset"),
            "{query}: {error}"
        );
    }
}

/// More series than a memo holds (`memo::MAX_ENTRIES` is small in tests), so memos
/// start over in the middle of a step: groups must still come out once each, with the
/// same values a fresh evaluation gives.
#[test]
fn memos_that_start_over_keep_groups_whole() {
    let mut store = MemStore::default();
    let n = 3 * crate::memo::MAX_ENTRIES + 7;
    for i in 0..n {
        let samples: Vec<(Millis, f64)> = (0..=6)
            .map(|s| (s * 10_000, (s * i as i64) as f64))
            .collect();
        // More groups than a memo holds, several series each.
        let job = format!("j{}", i % (crate::memo::MAX_ENTRIES + 9));
        let instance = i.to_string();
        let le = ["0.1", "1", "+Inf"][i % 3];
        store.series.push(series(
            &[
                ("__name__", "m_bucket"),
                ("job", &job),
                ("instance", &instance),
                ("le", le),
            ],
            &samples,
        ));
    }
    let range = |query: &str| match Engine::default()
        .range_query(&store, query, 30_000, 60_000, 10_000)
        .map(|result| result.value)
    {
        Ok(Value::Matrix(series)) => series,
        other => panic!("{query}: expected a matrix, got {other:?}"),
    };
    let groups = crate::memo::MAX_ENTRIES + 9;
    let by_job = range("sum by (job) (rate(m_bucket[30s]))");
    assert_eq!(by_job.len(), groups);
    for series in &by_job {
        assert_eq!(series.points.len(), 4, "{series:?}");
    }
    let quantiles = range("histogram_quantile(0.5, sum by (le, job) (rate(m_bucket[30s])))");
    assert_eq!(quantiles.len(), groups);
}

mod rollups {
    use proptest::prelude::*;

    use super::*;

    /// Range functions and selectors that rollups evaluate, plus shapes around them.
    const QUERIES: &[&str] = &[
        "m",
        "m offset 1m",
        "timestamp(m)",
        "rate(m[1m])",
        "increase(m[2m] offset 30s)",
        "delta(m[90s])",
        "irate(m[1m])",
        "idelta(m[1m])",
        "deriv(m[2m])",
        "predict_linear(m[2m], 60)",
        "changes(m[3m])",
        "resets(m[3m])",
        "avg_over_time(m[1m])",
        "sum_over_time(m[1m])",
        "count_over_time(m[45s])",
        "min_over_time(m[1m])",
        "max_over_time(m[1m])",
        "ts_of_max_over_time(m[1m])",
        "stddev_over_time(m[2m])",
        "stdvar_over_time(m[2m])",
        "last_over_time(m[1m])",
        "first_over_time(m[1m])",
        "present_over_time(m[1m])",
        "mad_over_time(m[2m])",
        "double_exponential_smoothing(m[3m], 0.5, 0.5)",
        "holt_winters(m[3m], (0.3), 0.1)",
        "sum by (k) (rate(m[1m]))",
        "avg(m)",
        "max without (id) (m)",
        "min by (k) ((delta(m[1m])))",
        "count(irate(m[1m]))",
        "group by (k) (m offset 30s)",
        "stddev by (k) (avg_over_time(m[1m]))",
        "stdvar(m)",
        "sum by (__name__) (rate({__name__=~\"m|n\"}[1m]))",
        "quantile(0.5, rate(m[1m]))",
        "rate({__name__=~\"m|n\"}[1m])",
        "m / on (k) group_left n",
        "max_over_time(rate(m[1m])[2m:30s])",
        "rate(m[1m] @ 120)",
    ];

    /// Two metrics, a few series each, irregular samples with gaps, resets and stale
    /// markers.
    fn stores() -> impl Strategy<Value = MemStore> {
        let samples = proptest::collection::vec((1i64..40, -5i32..20, 0u8..20), 0..40);
        proptest::collection::vec(samples, 1..6).prop_map(|all| {
            let mut store = MemStore::default();
            for (i, gaps) in all.into_iter().enumerate() {
                let mut t = 0;
                let mut value = 0.0;
                let samples: Vec<(Millis, f64)> = gaps
                    .into_iter()
                    .map(|(gap, step, kind)| {
                        t += gap * 5_000;
                        value = if step < 0 {
                            0.0
                        } else {
                            value + f64::from(step)
                        };
                        let v = match kind {
                            0 => f64::from_bits(sightline_model::STALE_NAN_BITS),
                            1 => f64::NAN,
                            _ => value,
                        };
                        (t, v)
                    })
                    .collect();
                let name = if i % 3 == 2 { "n" } else { "m" };
                let k = (i % 2).to_string();
                let id = i.to_string();
                store.series.push(series(
                    &[("__name__", name), ("k", &k), ("id", &id)],
                    &samples,
                ));
            }
            store
        })
    }

    fn run(
        store: &MemStore,
        query: &str,
        start: Millis,
        end: Millis,
        step: Millis,
        rollups: bool,
    ) -> String {
        let engine = Engine::new(EngineOptions {
            rollups,
            ..EngineOptions::default()
        });
        let result = if step == 0 {
            engine.instant_query(store, query, start)
        } else {
            engine.range_query(store, query, start, end, step)
        };
        // Compared as text: NaN equals NaN there, and -0.0 differs from 0.0.
        format!("{result:?}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Rollups give exactly what step-by-step evaluation gives: values, labels,
        /// annotations and errors.
        #[test]
        fn rollups_match_step_by_step(
            store in stores(),
            start in 0i64..300_000,
            length in 0i64..600_000,
            step in prop_oneof![Just(0i64), 1_000i64..120_000],
        ) {
            for query in QUERIES {
                let rolled = run(&store, query, start, start + length, step, true);
                let stepped = run(&store, query, start, start + length, step, false);
                prop_assert_eq!(rolled, stepped, "{}", query);
            }
        }
    }
}
