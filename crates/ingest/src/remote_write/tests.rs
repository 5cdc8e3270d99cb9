use super::*;
use proptest::prelude::*;
use sightline_model::{MetricType, STALE_NAN_BITS, Sample, TimeSeries};

fn series(labels: Vec<proto::Label>) -> proto::TimeSeries {
    proto::TimeSeries {
        labels,
        samples: vec![proto::Sample {
            value: 1.0,
            timestamp: 1_700_000_000_000,
        }],
        exemplars: vec![],
        histograms: vec![],
    }
}

fn body(timeseries: Vec<proto::TimeSeries>) -> Vec<u8> {
    encode_request(&proto::WriteRequest {
        timeseries,
        metadata: vec![],
    })
}

fn invalid_reason(labels: Vec<proto::Label>) -> String {
    let ok = series(vec![proto::Label::new("__name__", "ok")]);
    let err = decode(&body(vec![ok, series(labels)]), &DecodeLimits::default())
        .expect_err("series must be refused");
    match &err {
        Error::InvalidSeries { index, .. } => assert_eq!(*index, 1, "{err}"),
        other => panic!("wrong variant: {other:?}"),
    }
    err.to_string()
}

#[test]
fn decodes_a_simple_request() {
    let mut request = proto::WriteRequest {
        timeseries: vec![proto::TimeSeries {
            labels: vec![
                proto::Label::new("job", "node"),
                proto::Label::new("__name__", "up"),
                proto::Label::new("empty", ""),
            ],
            samples: vec![
                proto::Sample {
                    value: 1.0,
                    timestamp: 1_700_000_000_123,
                },
                proto::Sample {
                    value: f64::from_bits(STALE_NAN_BITS),
                    timestamp: 1_700_000_015_000,
                },
            ],
            exemplars: vec![proto::Exemplar {
                labels: vec![proto::Label::new("trace_id", "abc")],
                value: 0.5,
                timestamp: 1_700_000_000_100,
            }],
            histograms: vec![proto::SkippedHistogram {}, proto::SkippedHistogram {}],
        }],
        metadata: vec![proto::MetricMetadata::new(
            proto::MetricType::Gauge,
            "up",
            "target is up",
            "",
        )],
    };
    request
        .timeseries
        .push(series(vec![proto::Label::new("no_name", "x")]));
    let decoded = decode(&encode_request(&request), &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.native_histograms_dropped, 2);
    let first = &decoded.request.series[0];
    assert_eq!(first.labels.to_string(), r#"up{job="node"}"#);
    assert_eq!(first.samples[0].timestamp, 1_700_000_000_123_000_000);
    assert_eq!(first.samples[1].value.to_bits(), STALE_NAN_BITS);
    assert_eq!(first.exemplars[0].labels.get("trace_id"), Some("abc"));
    assert_eq!(first.exemplars[0].timestamp, 1_700_000_000_100_000_000);
    // Series without __name__ are accepted, as Prometheus does.
    assert_eq!(decoded.request.series[1].labels.metric_name(), None);
    assert_eq!(
        decoded.request.metadata,
        vec![MetricMetadata {
            metric_family_name: "up".into(),
            metric_type: MetricType::Gauge,
            help: "target is up".into(),
            unit: String::new(),
        }]
    );
}

#[test]
fn invalid_label_sets_are_named() {
    let msg = invalid_reason(vec![]);
    assert_eq!(
        msg,
        "series 1 ({}): label set is empty (labels with empty values are dropped)"
    );

    let msg = invalid_reason(vec![proto::Label::new("a", "")]);
    assert!(msg.contains("label set is empty"), "{msg}");

    let msg = invalid_reason(vec![
        proto::Label::new("__name__", "x"),
        proto::Label::new("a", "1"),
        proto::Label::new("a", "2"),
    ]);
    assert!(
        msg.starts_with(r#"series 1 ({__name__="x", a="1", a="2"}): "#),
        "{msg}"
    );
    assert!(
        msg.contains(r#"label name "a" appears more than once"#),
        "{msg}"
    );

    let msg = invalid_reason(vec![
        proto::Label::new("__name__", "x"),
        proto::Label::new("", "v"),
    ]);
    assert_eq!(
        msg,
        r#"series 1 ({__name__="x", ="v"}): label name of label 1 is empty"#
    );

    let msg = invalid_reason(vec![
        proto::Label::new("__name__", "x"),
        proto::Label {
            name: vec![b'a', 0xff, b'b'],
            value: b"v".to_vec(),
        },
    ]);
    assert!(msg.contains("name of label 1"), "{msg}");
    assert!(msg.contains("is not valid UTF-8"), "{msg}");

    let msg = invalid_reason(vec![
        proto::Label::new("__name__", "x"),
        proto::Label {
            name: b"path".to_vec(),
            value: vec![0xc3, 0x28],
        },
    ]);
    assert!(
        msg.contains(r#"value of label "path" is not valid UTF-8"#),
        "{msg}"
    );
}

fn exemplar(labels: Vec<proto::Label>) -> proto::Exemplar {
    proto::Exemplar {
        labels,
        value: 1.0,
        timestamp: 1,
    }
}

#[test]
fn invalid_exemplar_labels_drop_only_the_exemplar() {
    let mut bad = series(vec![proto::Label::new("__name__", "x")]);
    bad.exemplars.push(exemplar(vec![proto::Label {
        name: b"trace_id".to_vec(),
        value: vec![0xff],
    }]));
    bad.exemplars
        .push(exemplar(vec![proto::Label::new("trace_id", "ok")]));
    let decoded = decode(&body(vec![bad]), &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.exemplars_dropped, 1);
    assert_eq!(
        decoded.exemplar_drop_reason.as_deref(),
        Some(
            r#"series 0 ({__name__="x"}): exemplar 0: value of label "trace_id" is not valid UTF-8"#
        )
    );
    let series = &decoded.request.series[0];
    assert_eq!(series.samples.len(), 1, "the sample is kept");
    assert_eq!(series.exemplars.len(), 1);
    assert_eq!(series.exemplars[0].labels.get("trace_id"), Some("ok"));
}

#[test]
fn exemplar_label_text_is_limited_to_128_characters() {
    // "trace_id" is 8 characters: a value of 120 makes exactly 128, which is allowed.
    let at_limit = "é".repeat(120);
    let over_limit = "é".repeat(121);
    let mut s = series(vec![proto::Label::new("__name__", "x")]);
    s.exemplars
        .push(exemplar(vec![proto::Label::new("trace_id", &at_limit)]));
    s.exemplars
        .push(exemplar(vec![proto::Label::new("trace_id", &over_limit)]));
    s.exemplars.push(exemplar(vec![
        proto::Label::new("a", "x".repeat(100)),
        proto::Label::new("b", "x".repeat(30)),
    ]));
    let decoded = decode(&body(vec![s]), &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.exemplars_dropped, 2);
    assert!(
        decoded
            .exemplar_drop_reason
            .as_deref()
            .unwrap()
            .contains("exemplar 1: exemplar labels are longer than 128 characters"),
        "{:?}",
        decoded.exemplar_drop_reason
    );
    let series = &decoded.request.series[0];
    assert_eq!(series.samples.len(), 1);
    assert_eq!(series.exemplars.len(), 1);
    assert_eq!(
        series.exemplars[0].labels.get("trace_id"),
        Some(at_limit.as_str())
    );
}

#[test]
fn label_limits_are_named() {
    let limits = DecodeLimits {
        max_label_names_per_series: 2,
        max_label_name_bytes: 8,
        max_label_value_bytes: 8,
        ..DecodeLimits::default()
    };
    let check = |labels: Vec<proto::Label>, want: &str| {
        let err = decode(&body(vec![series(labels)]), &limits).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    };
    check(
        vec![
            proto::Label::new("a", "1"),
            proto::Label::new("b", "1"),
            proto::Label::new("c", "1"),
        ],
        "has 3 labels; limit is 2 (max_label_names_per_series)",
    );
    check(
        vec![proto::Label::new("very_long_name", "1")],
        "is 14 bytes long; limit is 8 (max_label_name_bytes)",
    );
    check(
        vec![proto::Label::new("a", "0123456789")],
        r#"value of label "a" is 10 bytes long; limit is 8 (max_label_value_bytes)"#,
    );
}

#[test]
fn long_series_descriptions_are_truncated() {
    let labels = vec![
        proto::Label::new("__name__", "x".repeat(500)),
        proto::Label::new("b", "1"),
        proto::Label::new("b", "2"),
    ];
    let limits = DecodeLimits {
        max_label_value_bytes: 1000,
        ..DecodeLimits::default()
    };
    let err = decode(&body(vec![series(labels)]), &limits).unwrap_err();
    assert!(err.to_string().len() < 400, "{err}");
    assert!(err.to_string().contains("…"), "{err}");
}

#[test]
fn snappy_header_claiming_four_gib_is_too_large() {
    // Varint of 4 GiB (beyond snappy's u32 maximum) followed by junk.
    let mut body = vec![0x80, 0x80, 0x80, 0x80, 0x10];
    body.extend_from_slice(&[0u8; 16]);
    let err = decode(&body, &DecodeLimits::default()).unwrap_err();
    assert!(err.is_too_large(), "{err:?}");
    // Varint of 100 MiB, within snappy's range but past our 64 MiB default.
    let mut body = Vec::new();
    let mut n: u64 = 100 * 1024 * 1024;
    while n >= 0x80 {
        body.push((n as u8) | 0x80);
        n >>= 7;
    }
    body.push(n as u8);
    body.extend_from_slice(&[0u8; 16]);
    let err = decode(&body, &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        err,
        Error::TooLarge {
            decompressed: 100 * 1024 * 1024,
            limit: 64 * 1024 * 1024
        }
    );
    assert!(err.to_string().contains("max_decompressed_bytes"));
}

#[test]
fn truncated_snappy_is_bad_snappy() {
    let full = body(vec![series(vec![proto::Label::new(
        "__name__",
        "x".repeat(300),
    )])]);
    for cut in [1, full.len() / 2, full.len() - 1] {
        let err = decode(&full[..cut], &DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, Error::BadSnappy(_)), "cut {cut}: {err:?}");
    }
}

#[test]
fn protobuf_garbage_is_bad_protobuf() {
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])
        .unwrap();
    let err = decode(&garbage, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, Error::BadProtobuf(_)), "{err:?}");
    let wrong_wire_type = snap::raw::Encoder::new().compress_vec(&[0x0b]).unwrap();
    let err = decode(&wrong_wire_type, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(err, Error::BadProtobuf(_)), "{err:?}");
}

#[test]
fn model_round_trip_through_to_proto() {
    let request = WriteRequest {
        series: vec![TimeSeries {
            labels: Labels::from_pairs([("__name__", "m"), ("a", "b")]),
            samples: vec![Sample {
                timestamp: 5_000_000,
                value: 2.5,
            }],
            exemplars: vec![],
        }],
        metadata: vec![MetricMetadata {
            metric_family_name: "m".into(),
            metric_type: MetricType::Summary,
            help: "h".into(),
            unit: "seconds".into(),
        }],
    };
    let decoded = decode(
        &encode_request(&to_proto(&request)),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(decoded.request, request);
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("__name__".to_string()),
        "[a-zA-Z_][a-zA-Z0-9_]{0,12}",
        // Prometheus 3 accepts any UTF-8 name.
        "\\PC{1,6}",
    ]
}

fn arb_series() -> impl Strategy<Value = proto::TimeSeries> {
    (
        proptest::collection::btree_map(label_name(), "\\PC{1,16}", 1..8),
        proptest::collection::vec(
            (
                prop_oneof![
                    any::<f64>(),
                    Just(f64::NAN),
                    Just(f64::INFINITY),
                    Just(f64::from_bits(STALE_NAN_BITS))
                ],
                -1_000_000_000_000i64..5_000_000_000_000,
            ),
            0..6,
        ),
        0usize..3,
    )
        .prop_map(|(labels, samples, histograms)| proto::TimeSeries {
            labels: labels
                .into_iter()
                .rev()
                .map(|(n, v)| proto::Label::new(n, v))
                .collect(),
            samples: samples
                .into_iter()
                .map(|(value, timestamp)| proto::Sample { value, timestamp })
                .collect(),
            exemplars: vec![],
            histograms: vec![proto::SkippedHistogram {}; histograms],
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn encode_decode_round_trip(timeseries in proptest::collection::vec(arb_series(), 0..6)) {
        let request = proto::WriteRequest { timeseries: timeseries.clone(), metadata: vec![] };
        let decoded = decode(&encode_request(&request), &DecodeLimits::default()).unwrap();
        let histograms: usize = timeseries.iter().map(|s| s.histograms.len()).sum();
        prop_assert_eq!(decoded.native_histograms_dropped, histograms as u64);
        prop_assert_eq!(decoded.request.series.len(), timeseries.len());
        for (got, sent) in decoded.request.series.iter().zip(&timeseries) {
            let mut want: Vec<(String, String)> = sent
                .labels
                .iter()
                .map(|l| (String::from_utf8(l.name.clone()).unwrap(), String::from_utf8(l.value.clone()).unwrap()))
                .collect();
            want.sort();
            let got_labels: Vec<(String, String)> =
                got.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            prop_assert_eq!(got_labels, want);
            prop_assert_eq!(got.samples.len(), sent.samples.len());
            for (g, s) in got.samples.iter().zip(&sent.samples) {
                // proto3 omits a default-valued double, and prost treats -0.0 as
                // default: it arrives as +0.0 (gogo-generated Go code does the same).
                let same = g.value.to_bits() == s.value.to_bits() || (s.value == 0.0 && g.value == 0.0);
                prop_assert!(same, "{} sent, {} decoded", s.value, g.value);
                prop_assert_eq!(g.timestamp, s.timestamp * 1_000_000);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn snappy_wrapped_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let body = snap::raw::Encoder::new().compress_vec(&bytes).unwrap();
        match decode(&body, &DecodeLimits::default()) {
            Ok(_) | Err(Error::BadProtobuf(_)) | Err(Error::InvalidSeries { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn corrupted_valid_bodies_never_panic(
        timeseries in proptest::collection::vec(arb_series(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut body = encode_request(&proto::WriteRequest { timeseries, metadata: vec![] });
        for (index, byte) in flips {
            let i = index.index(body.len());
            body[i] ^= byte;
        }
        let _ = decode(&body, &DecodeLimits::default());
    }
}

/// What prost makes of a body: per series, its labels (empty values dropped, sorted)
/// and samples (ms, value bits). The oracle for the hand-written decoder.
type SeriesReading = (Vec<(Vec<u8>, Vec<u8>)>, Vec<(i64, u64)>);

fn prost_reading(body: &[u8]) -> Option<Vec<SeriesReading>> {
    let protobuf = snap::raw::Decoder::new().decompress_vec(body).ok()?;
    let request = <proto::WriteRequest as prost::Message>::decode(protobuf.as_slice()).ok()?;
    Some(
        request
            .timeseries
            .into_iter()
            .map(|series| {
                let mut labels: Vec<(Vec<u8>, Vec<u8>)> = series
                    .labels
                    .into_iter()
                    .filter(|l| !l.value.is_empty())
                    .map(|l| (l.name, l.value))
                    .collect();
                labels.sort();
                let samples = series
                    .samples
                    .iter()
                    .map(|s| (time::from_millis(s.timestamp), s.value.to_bits()))
                    .collect();
                (labels, samples)
            })
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A series' fingerprint, hashed where its labels lie in the body when they are in
    /// the usual form, is the one its owned labels compute.
    #[test]
    fn fingerprints_from_the_body_match_owned_labels(
        timeseries in proptest::collection::vec(arb_series(), 1..5),
        empty_value in any::<bool>(),
        sorted in any::<bool>(),
    ) {
        let mut timeseries = timeseries;
        for series in &mut timeseries {
            if sorted {
                series.labels.sort_by(|a, b| a.name.cmp(&b.name));
            }
            if empty_value {
                series.labels.push(proto::Label::new("zz_empty", ""));
            }
        }
        let body = encode_request(&proto::WriteRequest { timeseries, metadata: vec![] });
        let mut scratch = Scratch::default();
        let view = decode_body(&body, &DecodeLimits::default(), &mut scratch).unwrap();
        for series in view.series() {
            use sightline_model::LabelSet;
            prop_assert_eq!(series.labels.fingerprint(), series.labels.to_labels().fingerprint());
        }
    }

    /// Whatever the hand-written decoder accepts, prost reads the same way, and every
    /// label it hands on is UTF-8 (its label views skip that check, relying on it).
    #[test]
    fn accepted_bodies_read_as_prost_reads_them(
        timeseries in proptest::collection::vec(arb_series(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        let request = proto::WriteRequest { timeseries, metadata: vec![] };
        let mut protobuf = prost::Message::encode_to_vec(&request);
        for (index, byte) in flips {
            let i = index.index(protobuf.len());
            protobuf[i] ^= byte;
        }
        let body = snap::raw::Encoder::new().compress_vec(&protobuf).unwrap();
        let Ok(decoded) = decode(&body, &DecodeLimits::default()) else {
            return Ok(());
        };
        let oracle = prost_reading(&body);
        prop_assert!(oracle.is_some(), "prost refuses a body we accepted");
        let oracle = oracle.unwrap();
        prop_assert_eq!(decoded.request.series.len(), oracle.len());
        for (got, (labels, samples)) in decoded.request.series.iter().zip(oracle) {
            let got_labels: Vec<(Vec<u8>, Vec<u8>)> = got
                .labels
                .iter()
                .map(|l| (l.name.as_bytes().to_vec(), l.value.as_bytes().to_vec()))
                .collect();
            prop_assert_eq!(got_labels, labels);
            for label in got.labels.iter() {
                prop_assert!(std::str::from_utf8(label.name.as_bytes()).is_ok());
                prop_assert!(std::str::from_utf8(label.value.as_bytes()).is_ok());
            }
            let got_samples: Vec<(i64, u64)> = got
                .samples
                .iter()
                .map(|s| (s.timestamp, s.value.to_bits()))
                .collect();
            prop_assert_eq!(got_samples, samples);
        }
    }
}
