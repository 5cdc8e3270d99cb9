use sightline_ingest::exposition::{Format, parse};
use sightline_model::is_stale_nan;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn target() -> Labels {
    labels(&[("instance", "h:1"), ("job", "node")])
}

fn body(text: &str) -> Result<Exposition, String> {
    parse(text.as_bytes(), Format::PrometheusText).map_err(|e| e.to_string())
}

/// `(labels, value)` of every sample named `name`.
fn find(request: &WriteRequest, name: &str) -> Vec<(Labels, f64, i64)> {
    request
        .series
        .iter()
        .filter(|s| s.labels.metric_name() == Some(name))
        .map(|s| (s.labels.clone(), s.samples[0].value, s.samples[0].timestamp))
        .collect()
}

fn report(request: &WriteRequest, name: &str) -> f64 {
    find(request, name)[0].1
}

#[test]
fn target_labels_win_unless_honored() {
    let exposed = labels(&[("__name__", "m"), ("job", "inner"), ("exported_job", "x")]);
    assert_eq!(
        merge_target_labels(&exposed, &target(), false),
        labels(&[
            ("__name__", "m"),
            ("exported_exported_job", "inner"),
            ("exported_job", "x"),
            ("instance", "h:1"),
            ("job", "node"),
        ])
    );
    assert_eq!(
        merge_target_labels(&exposed, &target(), true),
        labels(&[
            ("__name__", "m"),
            ("exported_job", "x"),
            ("instance", "h:1"),
            ("job", "inner")
        ])
    );
}

#[test]
fn a_scrape_writes_samples_and_report_series() {
    let mut memory = SeriesMemory::default();
    let rules = SampleRules {
        honor_timestamps: true,
        ..SampleRules::default()
    };
    let (request, summary) = memory.scrape(
        &rules,
        &target(),
        body("# TYPE a gauge\na 1\nb{x=\"y\"} 2 1000\n"),
        5_000,
        0.25,
    );
    assert!(summary.up);
    let a = find(&request, "a");
    assert_eq!(
        a,
        vec![(
            labels(&[("__name__", "a"), ("instance", "h:1"), ("job", "node")]),
            1.0,
            5_000_000_000
        )]
    );
    assert_eq!(find(&request, "b")[0].2, 1_000_000_000, "honored timestamp");
    assert_eq!(report(&request, "up"), 1.0);
    assert_eq!(report(&request, "scrape_duration_seconds"), 0.25);
    assert_eq!(report(&request, "scrape_samples_scraped"), 2.0);
    assert_eq!(
        report(&request, "scrape_samples_post_metric_relabeling"),
        2.0
    );
    assert_eq!(
        report(&request, "scrape_series_added"),
        1.0,
        "b has its own timestamp: not tracked"
    );
    assert_eq!(request.metadata.len(), 1);
    assert_eq!(
        find(&request, "up")[0].0,
        labels(&[("__name__", "up"), ("instance", "h:1"), ("job", "node")])
    );

    // Without honor_timestamps every sample is at the scrape time.
    let (request, _) = memory.scrape(
        &SampleRules::default(),
        &target(),
        body("b 2 1000\n"),
        6_000,
        0.1,
    );
    assert_eq!(find(&request, "b")[0].2, 6_000_000_000);
}

#[test]
fn disappearing_series_and_failed_scrapes_get_staleness_markers() {
    let mut memory = SeriesMemory::default();
    let rules = SampleRules::default();
    let (_, summary) = memory.scrape(&rules, &target(), body("a 1\nb 2\n"), 1_000, 0.1);
    assert_eq!(summary.series_added, 2);
    let (request, summary) = memory.scrape(&rules, &target(), body("a 1\nc 3\n"), 2_000, 0.1);
    assert_eq!(summary.series_added, 1);
    let b = find(&request, "b");
    assert_eq!(b.len(), 1);
    assert!(is_stale_nan(b[0].1));
    assert_eq!(b[0].2, 2_000_000_000);
    assert!(!is_stale_nan(find(&request, "a")[0].1));

    let (request, summary) = memory.scrape(
        &rules,
        &target(),
        Err("connection refused".into()),
        3_000,
        0.1,
    );
    assert!(!summary.up);
    assert_eq!(report(&request, "up"), 0.0);
    assert!(is_stale_nan(find(&request, "a")[0].1));
    assert!(is_stale_nan(find(&request, "c")[0].1));
    // A second failure has nothing left to mark.
    let (request, _) = memory.scrape(&rules, &target(), Err("again".into()), 4_000, 0.1);
    assert_eq!(request.series.len(), REPORT_SERIES.len());
}

#[test]
fn end_of_run_marks_everything_stale() {
    let mut memory = SeriesMemory::default();
    assert!(
        memory.end_of_run(&target(), 1).is_none(),
        "nothing written yet"
    );
    memory.scrape(
        &SampleRules::default(),
        &target(),
        body("a 1\n"),
        1_000,
        0.1,
    );
    let request = memory.end_of_run(&target(), 500).expect("markers");
    assert_eq!(request.series.len(), 1 + REPORT_SERIES.len());
    for series in &request.series {
        assert!(is_stale_nan(series.samples[0].value), "{}", series.labels);
        assert_eq!(
            series.samples[0].timestamp, 1_001_000_000,
            "after the last scrape"
        );
    }
}

#[test]
fn sample_limit_fails_the_whole_scrape() {
    let mut memory = SeriesMemory::default();
    let rules = SampleRules {
        sample_limit: 2,
        metric_relabel_configs: serde_saphyr::from_str(
            "- {source_labels: [__name__], regex: drop_me, action: drop}",
        )
        .unwrap(),
        ..SampleRules::default()
    };
    let (request, summary) =
        memory.scrape(&rules, &target(), body("a 1\nb 1\ndrop_me 1\n"), 1_000, 0.1);
    assert!(
        summary.up,
        "2 samples after relabeling are within the limit"
    );
    assert!(find(&request, "drop_me").is_empty());
    assert_eq!(report(&request, "scrape_samples_scraped"), 3.0);
    assert_eq!(
        report(&request, "scrape_samples_post_metric_relabeling"),
        2.0
    );
    let (request, summary) = memory.scrape(&rules, &target(), body("a 1\nb 1\nc 1\n"), 2_000, 0.1);
    assert!(!summary.up);
    assert!(summary.error.unwrap().contains("sample_limit"));
    assert_eq!(report(&request, "up"), 0.0);
    assert!(
        find(&request, "c").is_empty(),
        "nothing of an over-limit scrape is stored"
    );
    assert!(is_stale_nan(find(&request, "a")[0].1));
}

#[test]
fn exemplars_take_the_sample_time_when_they_have_none() {
    let mut memory = SeriesMemory::default();
    let exposition = parse(
        b"# TYPE c counter\nc_total 1 # {trace_id=\"abc\"} 0.5\nc_created 1 # {trace_id=\"d\"} 2 3.5\n# EOF\n",
        Format::OpenMetrics,
    )
    .map_err(|e| e.to_string());
    let (request, _) = memory.scrape(&SampleRules::default(), &target(), exposition, 7_000, 0.1);
    let total = request
        .series
        .iter()
        .find(|s| s.labels.metric_name() == Some("c_total"))
        .unwrap();
    assert_eq!(total.exemplars[0].timestamp, 7_000_000_000);
    assert_eq!(total.exemplars[0].labels, labels(&[("trace_id", "abc")]));
    let created = request
        .series
        .iter()
        .find(|s| s.labels.metric_name() == Some("c_created"))
        .unwrap();
    assert_eq!(created.exemplars[0].timestamp, 3_500_000_000);
}

mod model {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// One scrape of a model run: the names exposed, or a failure.
    fn scrape_strategy() -> impl Strategy<Value = Option<BTreeSet<u8>>> {
        prop::option::weighted(0.8, prop::collection::btree_set(0u8..6, 0..6))
    }

    proptest! {
        /// Against a brute-force oracle: a series gets a staleness marker exactly when
        /// it was written by the previous scrape and is not written by this one, and
        /// `up`/`scrape_series_added` follow.
        #[test]
        fn staleness_follows_the_oracle(scrapes in prop::collection::vec(scrape_strategy(), 1..12)) {
            let mut memory = SeriesMemory::default();
            let mut previous: BTreeSet<u8> = BTreeSet::new();
            for (index, scrape) in scrapes.iter().enumerate() {
                let at = 1_000 * (index as i64 + 1);
                let exposition = match scrape {
                    Some(names) => body(&names.iter().map(|n| format!("m{n} 1\n")).collect::<String>()),
                    None => Err("down".to_string()),
                };
                let (request, summary) = memory.scrape(&SampleRules::default(), &target(), exposition, at, 0.1);
                let current = scrape.clone().unwrap_or_default();
                prop_assert_eq!(summary.up, scrape.is_some());
                prop_assert_eq!(summary.series_added, current.difference(&previous).count());
                for n in 0u8..6 {
                    let values: Vec<f64> = find(&request, &format!("m{n}")).into_iter().map(|(_, v, _)| v).collect();
                    let want_stale = previous.contains(&n) && !current.contains(&n);
                    let want_value = current.contains(&n);
                    prop_assert_eq!(values.iter().filter(|v| is_stale_nan(**v)).count(), usize::from(want_stale), "m{} at scrape {}", n, index);
                    prop_assert_eq!(values.iter().filter(|v| **v == 1.0).count(), usize::from(want_value), "m{} at scrape {}", n, index);
                }
                previous = current;
            }
        }
    }
}

#[test]
fn label_limits_fail_the_scrape() {
    let mut memory = SeriesMemory::default();
    let rules = SampleRules {
        label_limits: sightline_pipeline::LabelLimits {
            max_label_value_bytes: 3,
            ..sightline_pipeline::LabelLimits::default()
        },
        ..SampleRules::default()
    };
    let short_target = labels(&[("job", "j")]);
    let (_, summary) = memory.scrape(&rules, &short_target, body("a{x=\"abc\"} 1\n"), 1_000, 0.1);
    assert!(summary.up);
    let (request, summary) =
        memory.scrape(&rules, &short_target, body("a{x=\"abcd\"} 1\n"), 2_000, 0.1);
    assert!(!summary.up);
    assert!(summary.error.unwrap().contains("max_label_value_bytes"));
    assert_eq!(report(&request, "up"), 0.0);
}
