//! Instant-vector function cases: math, clamping, calendar, sorting, label
//! functions and classic-histogram functions.

use sightline_model::Labels;

use super::*;

/// Found by the differential test against Prometheus: asinh(1.5e308) is
/// 710.2948209308341 in Go and was +Inf here (Rust's asinh and acosh overflow).
#[test]
fn inverse_hyperbolic_functions_as_in_go() {
    let of = |name: &str, v: f64| vector(name, vec![sample(&[], v)], &[], &[]).unwrap()[0].v;
    let cases = [
        ("asinh", 1.5e308, 710.2948209308341),
        ("asinh", -1.5e308, -710.2948209308341),
        ("asinh", 1e300, 691.4686750787736),
        ("asinh", 3.0, 1.8184464592320668),
        ("asinh", 0.5, 0.48121182505960347),
        ("asinh", 1e-300, 1e-300),
        ("acosh", 1.5e308, 710.2948209308341),
        ("acosh", 3.0, 1.762747174039086),
        ("acosh", 1.5, 0.9624236501192069),
        ("acosh", 1.0, 0.0),
    ];
    for (name, input, want) in cases {
        assert_close(Some(of(name, input)), want);
    }
    assert_eq!(of("asinh", f64::NEG_INFINITY), f64::NEG_INFINITY);
    assert_eq!(of("acosh", f64::INFINITY), f64::INFINITY);
    assert!(of("acosh", 0.5).is_nan());
    assert!(of("asinh", f64::NAN).is_nan());
}

#[test]
fn math_functions_drop_the_metric_name() {
    let input = vec![sample(&[("__name__", "m"), ("a", "x")], -2.5)];
    let output = vector("abs", input.clone(), &[], &[]).unwrap();
    assert_eq!(output[0].labels, Labels::from_pairs([("a", "x")]));
    assert_eq!(output[0].v, 2.5);
    assert_eq!(output[0].t, 1000);
    assert_eq!(vector("ceil", input.clone(), &[], &[]).unwrap()[0].v, -2.);
    assert_eq!(vector("floor", input.clone(), &[], &[]).unwrap()[0].v, -3.);
    assert_eq!(vector("sgn", input.clone(), &[], &[]).unwrap()[0].v, -1.);
    assert_eq!(
        vector("log2", vec![sample(&[], 1024.)], &[], &[]).unwrap()[0].v,
        10.
    );
    assert_close(
        Some(vector("log2", vec![sample(&[], 10.)], &[], &[]).unwrap()[0].v),
        3.3219280948873626,
    );
    assert_close(
        Some(vector("log10", vec![sample(&[], 20.)], &[], &[]).unwrap()[0].v),
        1.301029995663981,
    );
    assert_eq!(
        vector("log10", vec![sample(&[], 0.)], &[], &[]).unwrap()[0].v,
        f64::NEG_INFINITY
    );
    assert!(
        vector("log10", vec![sample(&[], -1.)], &[], &[]).unwrap()[0]
            .v
            .is_nan()
    );
    assert_close(
        Some(vector("deg", vec![sample(&[], std::f64::consts::PI)], &[], &[]).unwrap()[0].v),
        180.,
    );
    assert_close(
        Some(vector("rad", vec![sample(&[], 180.)], &[], &[]).unwrap()[0].v),
        std::f64::consts::PI,
    );
    assert!(
        vector("sgn", vec![sample(&[], f64::NAN)], &[], &[]).unwrap()[0]
            .v
            .is_nan()
    );
}

#[test]
fn round_and_clamp() {
    let values = |vs: Vec<VectorSample>| vs.iter().map(|s| s.v).collect::<Vec<_>>();
    let input = || {
        vec![
            sample(&[("a", "1")], 2.5),
            sample(&[("a", "2")], -2.5),
            sample(&[("a", "3")], 1.234),
        ]
    };
    assert_eq!(
        values(vector("round", input(), &[], &[]).unwrap()),
        [3., -2., 1.]
    );
    assert_eq!(
        values(vector("round", input(), &[0.1], &[]).unwrap()),
        [2.5, -2.5, 1.2]
    );
    let clamp_input = || {
        vec![
            sample(&[("s", "a")], -50.),
            sample(&[("s", "b")], 0.),
            sample(&[("s", "c")], 100.),
        ]
    };
    assert_eq!(
        values(vector("clamp_max", clamp_input(), &[75.], &[]).unwrap()),
        [-50., 0., 75.]
    );
    assert_eq!(
        values(vector("clamp_min", clamp_input(), &[-25.], &[]).unwrap()),
        [-25., 0., 100.]
    );
    assert_eq!(
        values(vector("clamp", clamp_input(), &[-25., 75.], &[]).unwrap()),
        [-25., 0., 75.]
    );
    assert!(
        values(vector("clamp", clamp_input(), &[0., f64::NAN], &[]).unwrap())
            .iter()
            .all(|v| v.is_nan())
    );
    assert!(
        values(vector("clamp", clamp_input(), &[f64::NAN, 0.], &[]).unwrap())
            .iter()
            .all(|v| v.is_nan())
    );
    assert!(
        vector("clamp", clamp_input(), &[5., -5.], &[])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn calendar_functions() {
    let of = |name: &str, v: f64| vector(name, vec![sample(&[], v)], &[], &[]).unwrap()[0].v;
    // functions.test:1315
    assert_eq!(of("year", 0.), 1970.);
    assert_eq!(of("day_of_week", 0.), 4.);
    assert_eq!(of("year", 1136239445.), 2006.);
    assert_eq!(of("month", 1136239445.), 1.);
    assert_eq!(of("day_of_month", 1136239445.), 2.);
    assert_eq!(of("day_of_year", 1136239445.), 2.);
    assert_eq!(of("day_of_week", 1136239445.), 1.);
    assert_eq!(of("hour", 1136239445.), 22.);
    assert_eq!(of("minute", 1136239445.), 4.);
    assert_eq!(of("year", 1230767999.), 2008.);
    assert_eq!(of("year", 1230768000.), 2009.);
    assert_eq!(of("month", 1456790399.), 2.);
    assert_eq!(of("day_of_month", 1456790399.), 29.);
    assert_eq!(of("month", 1456790400.), 3.);
    assert_eq!(of("day_of_year", 1483191420.), 366.);
    assert_eq!(of("day_of_year", 1672493820.), 365.);
    assert_eq!(of("days_in_month", 1454284800.), 29.);
    assert_eq!(of("days_in_month", 1485907200.), 28.);
    // Before the epoch: 1969-12-31 23:59:59 (Go truncates -0.5 to 0 first).
    assert_eq!(of("year", -1.), 1969.);
    assert_eq!(of("hour", -1.), 23.);
    assert_eq!(of("year", -0.5), 1970.);
    // Found by the differential test against Prometheus: NaN, infinities and values
    // outside int64 become i64::MIN seconds, which Go's time package wraps around to
    // 4 December 292277026596 15:30 (a Sunday); values near the ends of int64 wrap too.
    let wrapped = [
        ("year", 292277026596.),
        ("month", 12.),
        ("day_of_month", 4.),
        ("day_of_year", 339.),
        ("day_of_week", 0.),
        ("days_in_month", 31.),
        ("hour", 15.),
        ("minute", 30.),
    ];
    for v in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e20,
        -1e20,
        9.3e18,
    ] {
        for (name, want) in wrapped {
            assert_eq!(of(name, v), want, "{name}({v})");
        }
    }
    assert_eq!(of("year", -9.2e18), -291536392293.);
    assert_eq!(of("day_of_week", -9.2e18), 2.);
    assert_eq!(of("day_of_year", -9.2e18), 123.);
    assert_eq!(of("year", 8139454208.), 2227.);
    assert_eq!(of("year", -62135596801.), 0.);
    assert_eq!(of("day_of_year", -62135596801.), 366.);
}

#[test]
fn timestamp_uses_the_sample_time() {
    let input = vec![VectorSample {
        labels: Labels::from_pairs([("__name__", "m")]),
        t: 1500,
        v: 7.,
    }];
    let output = eval_vector_function("timestamp", input, &[], &[], 9000).unwrap();
    assert_eq!(output[0].v, 1.5);
    assert_eq!(output[0].t, 9000);
    assert!(output[0].labels.is_empty());
}

#[test]
fn sorting() {
    let input = || {
        vec![
            sample(&[("i", "10")], 3.),
            sample(&[("i", "2")], f64::NAN),
            sample(&[("i", "1")], 1.),
            sample(&[("i", "b")], 2.),
        ]
    };
    let values = |vs: Vec<VectorSample>| vs.iter().map(|s| s.v.to_string()).collect::<Vec<_>>();
    assert_eq!(
        values(vector("sort", input(), &[], &[]).unwrap()),
        ["1", "2", "3", "NaN"]
    );
    assert_eq!(
        values(vector("sort_desc", input(), &[], &[]).unwrap()),
        ["3", "2", "1", "NaN"]
    );
    let by_label = vector("sort_by_label", input(), &[], &["i"]).unwrap();
    let order: Vec<&str> = by_label
        .iter()
        .map(|s| s.labels.get("i").unwrap())
        .collect();
    assert_eq!(order, ["1", "2", "10", "b"]);
    let by_label_desc = vector("sort_by_label_desc", input(), &[], &["i"]).unwrap();
    let order: Vec<&str> = by_label_desc
        .iter()
        .map(|s| s.labels.get("i").unwrap())
        .collect();
    assert_eq!(order, ["b", "10", "2", "1"]);
    assert!(instant::natural_less("a2", "a10"));
    assert!(!instant::natural_less("a10", "a2"));
    assert!(instant::natural_less("instance-1", "instance-1-x"));
}

#[test]
fn label_replace_cases() {
    // functions.test:426
    let input = || {
        vec![
            sample(
                &[
                    ("__name__", "testmetric"),
                    ("src", "source-value-10"),
                    ("dst", "original"),
                ],
                0.,
            ),
            sample(
                &[
                    ("__name__", "testmetric"),
                    ("src", "source-value-20"),
                    ("dst", "original"),
                ],
                1.,
            ),
        ]
    };
    let dst = |vs: Vec<VectorSample>| {
        vs.iter()
            .map(|s| s.labels.get("dst").unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let out = vector(
        "label_replace",
        input(),
        &[],
        &["dst", "destination-value-$1", "src", "source-value-(.*)"],
    )
    .unwrap();
    assert_eq!(out[0].labels.metric_name(), Some("testmetric"));
    assert_eq!(dst(out), ["destination-value-10", "destination-value-20"]);
    let out = vector(
        "label_replace",
        input(),
        &[],
        &["dst", "destination-value-$1", "src", "value-(.*)"],
    )
    .unwrap();
    assert_eq!(dst(out), ["original", "original"]);
    let out = vector(
        "label_replace",
        input(),
        &[],
        &["dst", "$1-value-$2", "src", "(.*)-value-(.*)"],
    )
    .unwrap();
    assert_eq!(dst(out), ["source-value-10", "source-value-20"]);
    let out = vector(
        "label_replace",
        input(),
        &[],
        &["dst", "value-$1", "nonexistent-src", "(.*)"],
    )
    .unwrap();
    assert_eq!(dst(out), ["value-", "value-"]);
    let out = vector("label_replace", input(), &[], &["dst", "", "dst", ".*"]).unwrap();
    assert_eq!(out[0].labels.get("dst"), None);
    let out = vector(
        "label_replace",
        input(),
        &[],
        &[
            "dst",
            "${1}x $1x $$ $ ${name}",
            "src",
            "(?P<name>source)-value-(.*)",
        ],
    )
    .unwrap();
    assert_eq!(out[0].labels.get("dst"), Some("sourcex  $ $ source"));
    assert!(
        vector(
            "label_replace",
            input(),
            &[],
            &["dst", "value-$1", "src", "(.*"]
        )
        .is_err()
    );
    assert!(vector("label_replace", input(), &[], &["", "", "src", "(.*)"]).is_err());
    let duplicate = vector("label_replace", input(), &[], &["src", "", "", ""]).unwrap_err();
    assert_eq!(
        duplicate.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
}

#[test]
fn label_join_cases() {
    // functions.test:506
    let input = || {
        vec![
            sample(
                &[("src", "a"), ("src1", "b"), ("src2", "c"), ("dst", "orig")],
                0.,
            ),
            sample(
                &[("src", "d"), ("src1", "e"), ("src2", "f"), ("dst", "orig")],
                1.,
            ),
        ]
    };
    let dst = |vs: Vec<VectorSample>| {
        vs.iter()
            .map(|s| s.labels.get("dst").unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        dst(vector(
            "label_join",
            input(),
            &[],
            &["dst", "-", "src", "src1", "src2"]
        )
        .unwrap()),
        ["a-b-c", "d-e-f"]
    );
    assert_eq!(
        dst(vector(
            "label_join",
            input(),
            &[],
            &["dst", "-", "src", "src3", "src1"]
        )
        .unwrap()),
        ["a--b", "d--e"]
    );
    assert_eq!(
        dst(vector("label_join", input(), &[], &["dst", "", "emptysrc"]).unwrap()),
        ["", ""]
    );
    assert_eq!(
        dst(vector("label_join", input(), &[], &["dst", ", "]).unwrap()),
        ["", ""]
    );
    let dup = vec![
        sample(&[("a", "1"), ("this", "x")], 0.),
        sample(&[("a", "1"), ("this", "y")], 1.),
    ];
    assert!(vector("label_join", dup, &[], &["this", "", "nope"]).is_err());
}

fn buckets(name: &str, extra: &[(&str, &str)], bounds_counts: &[(&str, f64)]) -> Vec<VectorSample> {
    bounds_counts
        .iter()
        .map(|&(le, count)| {
            let mut pairs = vec![("__name__", name), ("le", le)];
            pairs.extend_from_slice(extra);
            sample(&pairs, count)
        })
        .collect()
}

#[test]
fn histogram_quantile_classic() {
    // histograms.test:8 "testhistogram" at 50m.
    let positive = buckets(
        "testhistogram_bucket",
        &[("start", "positive")],
        &[("0.1", 50.), (".2", 70.), ("1e0", 110.), ("+Inf", 120.)],
    );
    let negative = buckets(
        "testhistogram_bucket",
        &[("start", "negative")],
        &[("-.2", 10.), ("-0.1", 20.), ("0.3", 20.), ("+Inf", 30.)],
    );
    let eval = |q: f64| {
        let mut input = positive.clone();
        input.extend(negative.clone());
        vector("histogram_quantile", input, &[q], &[]).unwrap()
    };
    let out = eval(0.2);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].labels, Labels::from_pairs([("start", "positive")]));
    assert_close(Some(out[0].v), 0.048);
    assert_close(Some(out[1].v), -0.2);
    let out = eval(0.5);
    assert_close(Some(out[0].v), 0.15);
    assert_close(Some(out[1].v), -0.15);
    let out = eval(0.8);
    assert_close(Some(out[0].v), 0.72);
    assert_close(Some(out[1].v), 0.3);
    assert_eq!(eval(0.)[0].v, 0.);
    assert_eq!(eval(0.)[1].v, -0.2);
    assert_eq!(eval(1.)[0].v, 1.);
    assert_eq!(eval(1.)[1].v, 0.3);
    assert_eq!(eval(-0.1)[0].v, f64::NEG_INFINITY);
    assert_eq!(eval(1.01)[0].v, f64::INFINITY);
    assert!(eval(f64::NAN)[0].v.is_nan());
    let mut annotations = Annotations::default();
    eval_vector_function_annotated(
        "histogram_quantile",
        positive.clone(),
        &[1.5],
        &[],
        0,
        &mut annotations,
        &mut FunctionMemo::default(),
    )
    .unwrap();
    assert_eq!(annotations.warnings.len(), 1);
}

#[test]
fn histogram_quantile_special_cases() {
    let q =
        |input: Vec<VectorSample>, q: f64| vector("histogram_quantile", input, &[q], &[]).unwrap();
    // No +Inf bucket → NaN; a single bucket → NaN; zero observations → NaN.
    assert!(
        q(buckets("h", &[], &[("0.1", 1.), ("0.2", 2.)]), 0.5)[0]
            .v
            .is_nan()
    );
    assert!(q(buckets("h", &[], &[("+Inf", 2.)]), 0.5)[0].v.is_nan());
    assert!(
        q(buckets("h", &[], &[("1", 0.), ("+Inf", 0.)]), 0.5)[0]
            .v
            .is_nan()
    );
    // A malformed `le` is skipped with a warning.
    let mut annotations = Annotations::default();
    let input = buckets(
        "h",
        &[],
        &[("1", 1.), ("x", 1.), ("1e400", 1.), ("+Inf", 2.)],
    );
    let out = eval_vector_function_annotated(
        "histogram_quantile",
        input,
        &[0.5],
        &[],
        0,
        &mut annotations,
        &mut FunctionMemo::default(),
    )
    .unwrap();
    assert_eq!(out[0].v, 1.);
    assert_eq!(annotations.warnings.len(), 2);
    // Non-monotonic counts are forced monotonic with an info.
    let mut annotations = Annotations::default();
    let input = buckets(
        "h",
        &[],
        &[("1", 10.), ("2", 5.), ("3", 20.), ("+Inf", 20.)],
    );
    let out = eval_vector_function_annotated(
        "histogram_quantile",
        input,
        &[0.75],
        &[],
        0,
        &mut annotations,
        &mut FunctionMemo::default(),
    )
    .unwrap();
    // Counts become 10 10 20 20: rank 15 lies halfway through (2, 3].
    assert_close(Some(out[0].v), 2.5);
    assert_eq!(annotations.infos.len(), 1);
    // Duplicate bounds are coalesced; tiny precision noise is ignored silently.
    let mut buckets_list = vec![
        Bucket {
            upper_bound: 1.,
            count: 1.,
        },
        Bucket {
            upper_bound: 1.,
            count: 1.,
        },
        Bucket {
            upper_bound: 2.,
            count: 4. * (1. - 1e-15),
        },
        Bucket {
            upper_bound: 3.,
            count: 4.,
        },
        Bucket {
            upper_bound: f64::INFINITY,
            count: 4.,
        },
    ];
    let (value, repairs) = histogram::bucket_quantile(0.5, &mut buckets_list);
    assert_close(Some(value), 1.);
    assert!(repairs.fixed_precision && !repairs.forced_monotonic);
}

#[test]
fn histogram_fraction_classic() {
    // histograms.test:108 "testhistogram2" at 50m.
    let input = || {
        buckets(
            "testhistogram2_bucket",
            &[],
            &[("0", 0.), ("2", 10.), ("4", 20.), ("6", 30.), ("+Inf", 30.)],
        )
    };
    let fraction = |lower: f64, upper: f64| {
        vector("histogram_fraction", input(), &[lower, upper], &[]).unwrap()[0].v
    };
    assert_close(Some(fraction(0., 4.)), 0.6666666666666666);
    assert_close(Some(fraction(0., 6.)), 1.);
    assert_close(Some(fraction(0., 3.5)), 0.5833333333333334);
    assert_eq!(fraction(4., 0.), 0.);
    assert!(fraction(f64::NAN, 1.).is_nan());
    let out = vector("histogram_fraction", input(), &[0., 4.], &[]).unwrap();
    assert!(out[0].labels.is_empty());
}

#[test]
fn native_only_functions_ignore_floats() {
    assert!(
        vector("histogram_count", vec![sample(&[], 1.)], &[], &[])
            .unwrap()
            .is_empty()
    );
    assert!(
        vector("histogram_fraction", vec![sample(&[], 1.)], &[0., 1.], &[])
            .unwrap()
            .is_empty()
    );
    assert!(vector("no_such_function", vec![], &[], &[]).is_err());
    assert!(eval_range_function("no_such_function", &[] as &[Point], &window(), &[]).is_err());
}
