use proptest::prelude::*;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn prom(text: &str) -> Exposition {
    parse(text.as_bytes(), Format::PrometheusText).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn om(text: &str) -> Exposition {
    parse(text.as_bytes(), Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error(text: &str, format: Format) -> String {
    match parse(text.as_bytes(), format) {
        Ok(parsed) => panic!("{text:?} parsed: {parsed:?}"),
        Err(e) => e.to_string(),
    }
}

/// Prometheus' `TestPromParse` input (model/textparse/promparse_test.go).
#[test]
fn prometheus_textparse_cases() {
    let mut input = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# 	TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
go_gc_duration_seconds{quantile="0.8", a="b"} 8.3835e-05
go_gc_duration_seconds{ quantile="0.9", a="b"} 8.3835e-05
# Hrandom comment starting with prefix of HELP
#
wind_speed{A="2",c="3"} 12345
# comment with escaped \n newline
# comment with escaped \ escape character
# HELP nohelp1
# HELP nohelp2 
go_gc_duration_seconds{ quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile= "1.0", a= "b", } 8.3835e-05
go_gc_duration_seconds { quantile = "1.0", a = "b" } 8.3835e-05
go_gc_duration_seconds { quantile = "2.0" a = "b" } 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"}	1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33  	123123
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1"#
        .to_string();
    input.push_str("\n# HELP metric foo\x00bar");
    input.push_str("\nnull_byte_metric{a=\"abc\x00\"} 1");
    let parsed = prom(&input);
    let gc = "go_gc_duration_seconds";
    let expected: Vec<(Labels, f64, Option<i64>)> = vec![
        (
            labels(&[("__name__", gc), ("quantile", "0")]),
            4.9351e-05,
            None,
        ),
        (
            labels(&[("__name__", gc), ("quantile", "0.25")]),
            7.424100000000001e-05,
            None,
        ),
        (
            labels(&[("__name__", gc), ("quantile", "0.5"), ("a", "b")]),
            8.3835e-05,
            None,
        ),
        (
            labels(&[("__name__", gc), ("quantile", "0.8"), ("a", "b")]),
            8.3835e-05,
            None,
        ),
        (
            labels(&[("__name__", gc), ("quantile", "0.9"), ("a", "b")]),
            8.3835e-05,
            None,
        ),
        (
            labels(&[("__name__", "wind_speed"), ("A", "2"), ("c", "3")]),
            12345.0,
            None,
        ),
    ]
    .into_iter()
    .chain((0..4).map(|_| {
        (
            labels(&[("__name__", gc), ("quantile", "1.0"), ("a", "b")]),
            8.3835e-05,
            None,
        )
    }))
    .chain([
        (
            labels(&[("__name__", gc), ("quantile", "2.0"), ("a", "b")]),
            8.3835e-05,
            None,
        ),
        (
            labels(&[("__name__", "go_gc_duration_seconds_count")]),
            99.0,
            None,
        ),
        (
            labels(&[("__name__", "some:aggregate:rate5m"), ("a_b", "c")]),
            1.0,
            None,
        ),
        (labels(&[("__name__", "go_goroutines")]), 33.0, Some(123123)),
        (
            labels(&[("__name__", "_metric_starting_with_underscore")]),
            1.0,
            None,
        ),
        (
            labels(&[
                ("__name__", "testmetric"),
                ("_label_starting_with_underscore", "foo"),
            ]),
            1.0,
            None,
        ),
        (
            labels(&[("__name__", "testmetric"), ("label", "\"bar\"")]),
            1.0,
            None,
        ),
        (
            labels(&[("__name__", "null_byte_metric"), ("a", "abc\x00")]),
            1.0,
            None,
        ),
    ])
    .collect();
    let got: Vec<(Labels, f64, Option<i64>)> = parsed
        .samples
        .iter()
        .map(|s| (s.labels.clone(), s.value, s.timestamp_ms))
        .collect();
    assert_eq!(got, expected);
    let families: Vec<(&str, MetricType, &str)> = parsed
        .metadata
        .iter()
        .map(|m| {
            (
                m.metric_family_name.as_str(),
                m.metric_type,
                m.help.as_str(),
            )
        })
        .collect();
    assert_eq!(
        families,
        vec![
            (
                gc,
                MetricType::Summary,
                "A summary of the GC invocation durations."
            ),
            ("nohelp1", MetricType::Unknown, ""),
            ("nohelp2", MetricType::Unknown, ""),
            (
                "go_goroutines",
                MetricType::Gauge,
                "Number of goroutines that currently exist."
            ),
            ("metric", MetricType::Unknown, "foo\x00bar"),
        ]
    );
}

/// Prometheus' `TestPromParseErrors` inputs: each must fail, on the right line.
#[test]
fn prometheus_textparse_errors() {
    let cases = [
        "a",
        "a{b='c'} 1\n",
        "a{b=\n",
        "a true\n",
        "something_weird{problem=\"",
        "empty_label_name{=\"\"} 0",
        "foo 1_2\n",
        "foo 0x1p-3\n",
        "foo 0x1P-3\n",
        "foo 0 1_2\n",
        "{a=\"ok\"} 1",
        "# TYPE #\n",
        "# HELP #\n",
        "a{b=\x00\"ssss\"} 1\n",
        "a{b\x00=\"hiih\"}\t1",
        "a\x00{b=\"ddd\"} 1",
        "a 0 1\x00",
        "a{b=\"1\",b=\"2\"} 1",
        "# TYPE a counterish\n",
        "a 1 2 3",
    ];
    for case in cases {
        let message = match parse(case.as_bytes(), Format::PrometheusText) {
            Ok(parsed) => panic!("{case:?} parsed: {parsed:?}"),
            Err(e) => e.to_string(),
        };
        assert!(message.starts_with("line "), "{case:?}: {message}");
    }
    assert!(error("ok 1\nbad true\n", Format::PrometheusText).starts_with("line 2: "));
    let invalid_utf8 = parse(b"a 1\nb{c=\"\xff\"} 1\n", Format::PrometheusText)
        .unwrap_err()
        .to_string();
    assert!(invalid_utf8.starts_with("line 2: "), "{invalid_utf8}");
    let message = error("a{b=\"1\",b=\"2\"} 1", Format::PrometheusText);
    assert!(message.contains("\"b\" is not unique"), "{message}");
}

#[test]
fn prometheus_values_and_timestamps() {
    let parsed = prom("a NaN\nb +Inf\nc -Inf 5\nd 1e3 -7\ne Inf\nf .5\n");
    let values: Vec<f64> = parsed.samples.iter().map(|s| s.value).collect();
    assert!(values[0].is_nan());
    assert_eq!(
        values[1..],
        [f64::INFINITY, f64::NEG_INFINITY, 1000.0, f64::INFINITY, 0.5]
    );
    assert_eq!(parsed.samples[2].timestamp_ms, Some(5));
    assert_eq!(parsed.samples[3].timestamp_ms, Some(-7));
    // An empty label value is an absent label.
    assert_eq!(
        prom("a{b=\"\"} 1").samples[0].labels,
        labels(&[("__name__", "a")])
    );
    // Unknown escapes stay as written; HELP unescapes \\ and \n only.
    let parsed = prom("# HELP h x\\\\y\\nz\\\"\nh{l=\"a\\tb\"} 1\n");
    assert_eq!(parsed.metadata[0].help, "x\\y\nz\\\"");
    assert_eq!(parsed.samples[0].labels.get("l"), Some("a\\tb"));
}

const OPENMETRICS_INPUT: &str = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hh histogram
hh_bucket{le="+Inf"} 1
# TYPE gh gaugehistogram
gh_bucket{le="+Inf"} 1
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
# TYPE smr_seconds summary
smr_seconds_count 2.0 # {id="summary-count-test"} 1 123.321
# TYPE ii info
ii{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
# EOF
"#;

/// Prometheus' `TestOpenMetricsParse` input (openmetricsparse_test.go), abridged.
#[test]
fn openmetrics_textparse_cases() {
    let parsed = om(OPENMETRICS_INPUT);
    let find = |name: &str| {
        parsed
            .samples
            .iter()
            .find(|s| s.labels.metric_name() == Some(name))
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(parsed.samples.len(), 21);
    assert_eq!(find("go_goroutines").timestamp_ms, Some(123_123));
    let bucket = find("hhh_bucket");
    let exemplar = bucket.exemplar.as_ref().expect("exemplar");
    assert_eq!(exemplar.labels, labels(&[("id", "histogram-bucket-test")]));
    assert_eq!(exemplar.value, 4.0);
    assert_eq!(exemplar.timestamp_ms, None);
    let exemplar = find("ggh_bucket").exemplar.clone().expect("exemplar");
    assert_eq!(exemplar.timestamp_ms, Some(123_123));
    assert_eq!(exemplar.labels.len(), 2);
    let counter = find("foo_total");
    assert_eq!(counter.value, 17.0);
    assert_eq!(counter.timestamp_ms, Some(1_520_879_607_789));
    assert_eq!(counter.exemplar.as_ref().map(|e| e.value), Some(5.0));
    // `_created` stays an ordinary series, as in Prometheus 2.42.
    assert_eq!(find("foo_created").value, 1_520_872_607.123);
    let meta = |name: &str| {
        parsed
            .metadata
            .iter()
            .find(|m| m.metric_family_name == name)
            .unwrap_or_else(|| panic!("no metadata for {name}"))
            .clone()
    };
    let gc = meta("go_gc_duration_seconds");
    assert_eq!(gc.metric_type, MetricType::Summary);
    assert_eq!(gc.unit, "seconds");
    assert_eq!(meta("help2").help, "escape \\ \n \\ \" \\x chars");
    assert_eq!(meta("nounit").unit, "");
    assert_eq!(meta("ggh").metric_type, MetricType::GaugeHistogram);
    assert_eq!(meta("ss").metric_type, MetricType::StateSet);
    assert_eq!(meta("ii").metric_type, MetricType::Info);
    assert_eq!(meta("foo").metric_type, MetricType::Counter);
}

#[test]
fn openmetrics_errors_name_their_line() {
    let cases: [(&str, usize, &str); 12] = [
        ("a 1\n", 2, "does not end with # EOF"),
        ("a 1", 1, "does not end with # EOF"),
        ("a 1\n# EOF\nb 2\n", 3, "after # EOF"),
        ("a 1\n\n# EOF\n", 2, "empty line"),
        ("a  1\n# EOF\n", 1, "float value"),
        ("a{b=\"c\", d=\"e\"} 1\n# EOF\n", 1, "label name"),
        ("# random comment\n# EOF\n", 1, "HELP, TYPE, UNIT or EOF"),
        ("# TYPE a untyped\n# EOF\n", 1, "invalid metric type"),
        ("# UNIT a_x seconds\n# EOF\n", 1, "not a suffix"),
        ("a 1 # {id=\"x\"}\n# EOF\n", 1, "exemplar value"),
        ("a 1 # id=\"x\" 1\n# EOF\n", 1, "'{'"),
        ("a 1 1 # {x=\"y\"} 1 1 1\n# EOF\n", 1, "end of the line"),
    ];
    for (input, line, needle) in cases {
        let message = error(input, Format::OpenMetrics);
        assert!(
            message.starts_with(&format!("line {line}: ")) && message.contains(needle),
            "{input:?}: {message}"
        );
    }
    let long = "x".repeat(127);
    let message = error(
        &format!("a_total 1 # {{id=\"{long}\"}} 1\n# EOF\n"),
        Format::OpenMetrics,
    );
    assert!(message.contains("limit is 128"), "{message}");
}

#[test]
fn content_type_selects_the_format() {
    let cases = [
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::OpenMetrics,
        ),
        ("Application/OpenMetrics-Text", Format::OpenMetrics),
        (
            "text/plain; version=0.0.4; charset=utf-8",
            Format::PrometheusText,
        ),
        ("", Format::PrometheusText),
        ("application/json", Format::PrometheusText),
    ];
    for (content_type, format) in cases {
        assert_eq!(
            Format::from_content_type(content_type),
            format,
            "{content_type}"
        );
    }
}

/// Labels, value and timestamp of a generated exemplar.
type GeneratedExemplar = (Vec<(String, String)>, f64, Option<i64>);

/// One generated sample; rendered, it must parse back to itself.
#[derive(Debug, Clone)]
struct GeneratedSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<GeneratedExemplar>,
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}"
}

fn label_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map("[a-zA-Z][a-zA-Z0-9_]{0,8}", "[ -~\\n\\\\\"é€]{1,12}", 0..4)
        .prop_map(|map| map.into_iter().collect())
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
    ]
}

fn sample_strategy() -> impl Strategy<Value = GeneratedSample> {
    let exemplar = prop::option::of((
        prop::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{1,10}", 0..3)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        value_strategy(),
        prop::option::of(0i64..4_000_000_000_000),
    ));
    (
        name_strategy(),
        label_pairs(),
        value_strategy(),
        prop::option::of(0i64..4_000_000_000_000),
        exemplar,
    )
        .prop_map(
            |(name, labels, value, timestamp_ms, exemplar)| GeneratedSample {
                name,
                labels,
                value,
                timestamp_ms,
                exemplar,
            },
        )
}

fn render_labels(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn render_float(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value:?}")
    }
}

fn render(samples: &[GeneratedSample], format: Format) -> String {
    let mut out = String::new();
    for sample in samples {
        out.push_str(&sample.name);
        if !sample.labels.is_empty() {
            out.push_str(&render_labels(&sample.labels));
        }
        out.push(' ');
        out.push_str(&render_float(sample.value));
        if let Some(ts) = sample.timestamp_ms {
            match format {
                Format::PrometheusText => out.push_str(&format!(" {ts}")),
                Format::OpenMetrics => out.push_str(&format!(" {}.{:03}", ts / 1000, ts % 1000)),
            }
        }
        if format == Format::OpenMetrics
            && let Some((labels, value, ts)) = &sample.exemplar
        {
            out.push_str(" # ");
            out.push_str(&render_labels(labels));
            out.push(' ');
            out.push_str(&render_float(*value));
            if let Some(ts) = ts {
                out.push_str(&format!(" {}.{:03}", ts / 1000, ts % 1000));
            }
        }
        out.push('\n');
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn expected_labels(name: &str, pairs: &[(String, String)]) -> Labels {
    let mut all = vec![(METRIC_NAME_LABEL.to_string(), name.to_string())];
    all.extend(pairs.iter().cloned());
    Labels::from_pairs(all)
}

fn check_round_trip(samples: &[GeneratedSample], format: Format) -> Result<(), TestCaseError> {
    let body = render(samples, format);
    let parsed =
        parse(body.as_bytes(), format).map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
    prop_assert_eq!(parsed.samples.len(), samples.len());
    for (got, want) in parsed.samples.iter().zip(samples) {
        prop_assert_eq!(&got.labels, &expected_labels(&want.name, &want.labels));
        prop_assert_eq!(got.value.to_bits(), want.value.to_bits());
        prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
        let want_exemplar = want
            .exemplar
            .as_ref()
            .filter(|_| format == Format::OpenMetrics);
        match (&got.exemplar, want_exemplar) {
            (None, None) => {}
            (Some(got), Some((labels, value, ts))) => {
                prop_assert_eq!(&got.labels, &Labels::from_pairs(labels.iter().cloned()));
                prop_assert_eq!(got.value.to_bits(), value.to_bits());
                prop_assert_eq!(got.timestamp_ms, *ts);
            }
            (got, want) => prop_assert!(false, "exemplar {:?} != {:?}", got, want),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn generated_expositions_round_trip(samples in prop::collection::vec(sample_strategy(), 0..20)) {
        check_round_trip(&samples, Format::PrometheusText)?;
        check_round_trip(&samples, Format::OpenMetrics)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body, Format::PrometheusText);
        let _ = parse(&body, Format::OpenMetrics);
    }

    #[test]
    fn exposition_like_text_never_panics(body in "[a-z_{}=\",# .0-9\\n\\\\\tE+-]{0,200}") {
        let _ = parse(body.as_bytes(), Format::PrometheusText);
        let _ = parse(body.as_bytes(), Format::OpenMetrics);
    }
}
