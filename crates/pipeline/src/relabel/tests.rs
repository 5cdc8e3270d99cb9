//! Cases from Prometheus' `model/relabel/relabel_test.go`, written in the YAML users
//! write, so deserialization and defaults are tested on the way.

use proptest::prelude::*;

use super::*;

fn rules(yaml: &str) -> Vec<RelabelConfig> {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn rule_error(yaml: &str) -> String {
    match serde_saphyr::from_str::<Vec<RelabelConfig>>(yaml) {
        Ok(rules) => panic!("{yaml} parsed: {rules:?}"),
        Err(e) => e.to_string(),
    }
}

fn set(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn check(input: &[(&str, &str)], yaml: &str, output: Option<&[(&str, &str)]>) {
    let got = process(&set(input), &rules(yaml));
    assert_eq!(got, output.map(set), "{yaml}");
}

#[test]
fn replace() {
    let abc = [("a", "foo"), ("b", "bar"), ("c", "baz")];
    check(
        &abc,
        "- {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    );
    check(
        &abc,
        r#"
- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}
- {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}
"#,
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    );
    check(
        &[("a", "abc")],
        "- {source_labels: [a], regex: '.*(b).*', target_label: d}",
        Some(&[("a", "abc"), ("d", "b")]),
    );
    // No replacement without a match.
    check(
        &[("a", "boo")],
        "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
        Some(&[("a", "boo")]),
    );
    // Templated target labels; an invalid expanded target or empty replacement.
    let tpl = "some-([^-]+)-([^,]+)";
    check(
        &[("a", "some-name-value")],
        &format!(
            "- {{source_labels: [a], regex: '{tpl}', replacement: '${{2}}', target_label: '${{1}}'}}"
        ),
        Some(&[("a", "some-name-value"), ("name", "value")]),
    );
    check(
        &[("a", "some-name-value")],
        &format!(
            "- {{source_labels: [a], regex: '{tpl}', replacement: '${{3}}', target_label: '${{1}}'}}"
        ),
        Some(&[("a", "some-name-value")]),
    );
    check(
        &[("a", "some-name-0")],
        &format!(
            "- {{source_labels: [a], regex: '{tpl}', replacement: '${{1}}', target_label: '${{3}}'}}\n\
             - {{source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', replacement: '${{1}}', target_label: '${{3}}'}}"
        ),
        Some(&[("a", "some-name-0")]),
    );
    check(
        &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        r#"
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', replacement: '${1}', target_label: __metrics_path__}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', replacement: '${1}', target_label: job}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}'}
"#,
        Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]),
    );
    // `$1x` is the group named "1x" (absent: empty), as in Go; `$$` is a dollar.
    check(
        &[("a", "v")],
        "- {source_labels: [a], regex: '(.*)', target_label: b, replacement: '$1x'}",
        Some(&[("a", "v")]),
    );
    check(
        &[("a", "v")],
        "- {source_labels: [a], regex: '(?P<name>.*)', target_label: b, replacement: '$$${name}'}",
        Some(&[("a", "v"), ("b", "$v")]),
    );
    // A replacement that expands to nothing deletes the target.
    check(
        &[("a", ""), ("b", "x")],
        "- {source_labels: [a], target_label: b}",
        Some(&[]),
    );
}

#[test]
fn keep_and_drop() {
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: '.*o.*', action: drop}\n- {source_labels: [a], regex: 'f(.*)', target_label: d}",
        None,
    );
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: no-match, action: drop}",
        Some(&[("a", "foo")]),
    );
    // Anchored: "f|o" matches neither "foo" as a whole.
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: 'f|o', action: drop}",
        Some(&[("a", "foo")]),
    );
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: no-match, action: keep}",
        None,
    );
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: 'f.*', action: Keep}",
        Some(&[("a", "foo")]),
    );
    let ports = [
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    check(
        &ports,
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}",
        Some(&ports),
    );
    check(
        &ports,
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}",
        None,
    );
    check(
        &ports,
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}",
        Some(&ports),
    );
    check(
        &ports,
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}",
        None,
    );
}

#[test]
fn hashmod_matches_prometheus() {
    check(
        &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    );
    check(
        &[("a", "foo\nbar")],
        "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
        Some(&[("a", "foo\nbar"), ("b", "734")]),
    );
}

#[test]
fn label_actions() {
    let bs = [("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    check(
        &bs,
        "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
        Some(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]),
    );
    check(
        &[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
        ],
        "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
        Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    );
    check(
        &bs,
        "- {regex: '(b.*)', action: labelkeep}",
        Some(&[("b1", "bar"), ("b2", "baz")]),
    );
    check(
        &bs,
        "- {regex: '(b.*)', action: labeldrop}",
        Some(&[("a", "foo")]),
    );
    check(
        &[
            ("__meta_kubernetes_pod_container_port_name", "foo"),
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
        ],
        r#"
- {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}
- {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}
"#,
        Some(&[
            ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ]),
    );
    check(
        &[("foo", "bAr123Foo")],
        "- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}\n- {source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
        Some(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]),
    );
}

#[test]
fn validation_errors_are_prometheus_messages() {
    let cases = [
        ("- {action: ''}", "relabel action cannot be empty"),
        ("- {action: replace}", "requires 'target_label' value"),
        ("- {action: lowercase}", "requires 'target_label' value"),
        (
            "- {action: lowercase, target_label: '${3}'}",
            r#""${3}" is invalid 'target_label'"#,
        ),
        (
            "- {source_labels: [a], action: replace, target_label: '0${3}'}",
            r#""0${3}" is invalid 'target_label'"#,
        ),
        (
            "- {source_labels: [a], target_label: '-${3}'}",
            r#""-${3}" is invalid 'target_label' for replace action"#,
        ),
        (
            "- {action: hashmod, target_label: x}",
            "requires non-zero modulus",
        ),
        (
            "- {action: uppercase, target_label: x, replacement: y}",
            "'replacement' can not be set for uppercase action",
        ),
        (
            "- {action: keepequal, target_label: x, regex: a}",
            "keepequal action requires only 'source_labels' and `target_label`",
        ),
        (
            "- {action: labeldrop, regex: a, source_labels: [x]}",
            "labeldrop action requires only 'regex'",
        ),
        (
            "- {action: labelmap, replacement: '-x'}",
            r#""-x" is invalid 'replacement' for labelmap action"#,
        ),
        (
            "- {action: frobnicate}",
            "unknown relabel action \"frobnicate\"",
        ),
        ("- {regex: '(', target_label: x}", "invalid regex \"(\""),
        ("- {target_label: x, sourcelabels: [a]}", "sourcelabels"),
    ];
    for (yaml, needle) in cases {
        let message = rule_error(yaml);
        assert!(message.contains(needle), "{yaml}: {message}");
    }
    // Valid: a templated target that may expand to anything.
    rules(
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}",
    );
}

#[test]
fn relabel_target_validity() {
    let cases = [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ];
    for (text, valid) in cases {
        assert_eq!(is_valid_relabel_target(text), valid, "{text}");
    }
}

#[test]
fn defaults_and_serialization_round_trip() {
    let parsed = rules("- target_label: x\n- {regex: null, target_label: y}\n");
    assert_eq!(parsed[0].regex.as_str(), DEFAULT_REGEX);
    assert_eq!(parsed[0].separator, ";");
    assert_eq!(parsed[0].replacement, "$1");
    assert_eq!(parsed[0].action, RelabelAction::Replace);
    assert_eq!(parsed[1].regex.as_str(), "");
    let text = serde_saphyr::to_string(&parsed).expect("serializes");
    assert_eq!(rules(&text), parsed);
}

proptest! {
    /// Any label set survives a keep-everything rule list unchanged, and labelkeep of
    /// everything is the identity.
    #[test]
    fn identity_rules_keep_the_set(pairs in prop::collection::btree_map("[a-z_][a-z0-9_]{0,6}", "[ -~]{1,8}", 0..6)) {
        let labels = Labels::from_pairs(pairs.clone());
        let identity = rules("- {source_labels: [a], regex: '.*', action: keep}\n- {regex: '.*', action: labelkeep}");
        prop_assert_eq!(process(&labels, &identity), Some(labels.clone()));
    }

    /// hashmod is always below its modulus.
    #[test]
    fn hashmod_is_below_modulus(value in ".*", modulus in 1u64..10_000) {
        prop_assert!(hashmod(&value, modulus) < modulus);
    }
}
