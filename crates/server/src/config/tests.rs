use super::*;

const EXAMPLE: &str = include_str!("../../../../config/sightline.example.yaml");

#[test]
fn example_file_equals_defaults() {
    let parsed = Config::parse(EXAMPLE, "sightline.example.yaml").expect("example parses");
    assert_eq!(
        parsed,
        Config::default(),
        "config/sightline.example.yaml drifted from Config::default()"
    );
}

fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.push(path.clone());
            key_paths(child, &path, out);
        }
    }
}

#[test]
fn example_file_lists_every_option() {
    let example: serde_json::Value = serde_saphyr::from_str(EXAMPLE).expect("example parses");
    let defaults = serde_json::to_value(Config::default()).expect("serializes");
    let mut in_example = Vec::new();
    let mut in_code = Vec::new();
    key_paths(&example, "", &mut in_example);
    key_paths(&defaults, "", &mut in_code);
    in_example.sort();
    in_code.sort();
    assert_eq!(
        in_example, in_code,
        "config/sightline.example.yaml must list every option exactly"
    );
}

#[test]
fn empty_file_is_default() {
    assert_eq!(Config::parse("", "x").unwrap(), Config::default());
    assert_eq!(
        Config::parse("# nothing\n\n", "x").unwrap(),
        Config::default()
    );
}

#[test]
fn partial_file_keeps_other_defaults() {
    let config = Config::parse(
        "data_dir: /var/lib/sightline\nstorage:\n  metrics:\n    retention_time: 30d\n  wal:\n    fsync: always\nserver:\n  max_request_body_bytes: 32MiB\n",
        "x",
    )
    .unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/sightline"));
    assert_eq!(
        config.storage.metrics.retention_time.0,
        Duration::from_secs(30 * 86_400)
    );
    assert_eq!(config.storage.wal.fsync, FsyncMode::Always);
    assert_eq!(config.server.max_request_body_bytes, ByteSize(32 << 20));
    assert_eq!(config.server.listen, ServerConfig::default().listen);
    assert_eq!(config.limits, LimitsConfig::default());
}

#[test]
fn unknown_field_is_rejected_with_line_number() {
    let err = Config::parse("server:\n  listen: 127.0.0.1:1\n  lisen: x\n", "f.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lisen"), "{err}");
    assert!(err.contains('3'), "error should carry line 3: {err}");
}

#[test]
fn bad_values_are_reported() {
    let err = Config::parse("storage:\n  metrics:\n    block_range: 2 hours\n", "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 hours"), "{err}");
    let err = Config::parse("server:\n  listen: nowhere\n", "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2") || err.contains('2'), "{err}");
    let err = Config::parse("limits:\n  ingestion_rate_samples_per_second: 0\n", "f")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("limits.ingestion_rate_samples_per_second"),
        "{err}"
    );
    let err = Config::parse("query:\n  max_concurrent: 0\n  timeout: 0s\n", "f")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("query.max_concurrent must be above 0"),
        "{err}"
    );
    assert!(err.contains("query.timeout must be above 0s"), "{err}");
}

#[test]
fn durations_parse() {
    let cases = [
        ("0", 0),
        ("0s", 0),
        ("10ms", 10),
        ("30s", 30_000),
        ("10m", 600_000),
        ("2h", 7_200_000),
        ("15d", 15 * 86_400_000),
        ("1w", 7 * 86_400_000),
        ("1y", 365 * 86_400_000),
        ("1h30m", 5_400_000),
        (" 5s ", 5_000),
    ];
    for (text, ms) in cases {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(ms)),
            "{text}"
        );
    }
    for bad in [
        "",
        "s",
        "10",
        "10x",
        "1.5h",
        "-1s",
        "h10",
        "99999999999999999999y",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn durations_round_trip() {
    for ms in [
        0u64,
        10,
        1_000,
        60_000,
        5_400_000,
        15 * 86_400_000,
        14 * 86_400_000,
        1_001,
    ] {
        let duration = Duration::from_millis(ms);
        assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
    }
    assert_eq!(format_duration(Duration::from_secs(15 * 86_400)), "15d");
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
}

#[test]
fn byte_sizes_parse() {
    assert_eq!(parse_byte_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_byte_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_byte_size("1GB"), Ok(1_000_000_000));
    assert_eq!(parse_byte_size("16_777_216"), Ok(16 << 20));
    assert!(parse_byte_size("lots").is_err());
    assert!(parse_byte_size("99999999999TiB").is_err());
}

#[test]
fn db_options_follow_config() {
    let mut config = Config::default();
    config.storage.wal.fsync = FsyncMode::None;
    config.limits.max_series_per_tenant = 7;
    let cache = std::sync::Arc::new(sightline_tsdb::GroupCache::new(1 << 20));
    let options = config.db_options(std::sync::Arc::clone(&cache));
    assert!(std::sync::Arc::ptr_eq(&options.group_cache, &cache));
    assert_eq!(options.max_series, 7);
    assert_eq!(options.wal.fsync, sightline_wal::FsyncPolicy::None);
    assert_eq!(options.block_range, Duration::from_secs(7200));
}

#[test]
fn scrape_configs_are_read_and_checked() {
    let config = Config::parse(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n    static_configs: [{targets: ['h:9100']}]\n",
        "f",
    )
    .unwrap();
    assert_eq!(config.scrape_configs[0].job_name, "node");
    assert_eq!(config.scrape_configs[0].tenant, "default");
    let err = Config::parse(
        "scrape_configs:\n  - job_name: a\n  - job_name: a\n    tenant: LOCK\n",
        "f",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("\"a\" is used more than once"), "{err}");
    assert!(err.contains("invalid tenant \"LOCK\""), "{err}");
    let err = Config::parse(
        "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: drop\n        regex: '('\n",
        "f",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("invalid regex") && err.contains('4'), "{err}");
}
