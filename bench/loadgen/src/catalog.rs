//! The series one simulated node_exporter target exposes, and how each value moves.
//!
//! The mix follows what a real `node_exporter` (plus the series Prometheus adds to
//! every scrape) exposes on a Linux host: per-CPU counters, memory gauges, per-device
//! network and disk counters, per-mount filesystem gauges, collector timings, Go
//! runtime and process metrics. The catalog is sized by scaling the number of CPUs,
//! disks, mounts and network devices until it holds at least the requested number of
//! series, then cut to exactly that number.

/// `decimals` value meaning "do not round": a full-precision float.
pub(crate) const FULL_PRECISION: u8 = u8::MAX;

/// How a series' value moves from one scrape to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Behavior {
    /// Picked once in `[min, max]` when the target starts, then never changes.
    Constant { min: f64, max: f64, decimals: u8 },
    /// Monotonic counter growing by about `rate * interval` per scrape, where `rate`
    /// is picked once per series in `[rate_min, rate_max]` (units per second).
    Counter {
        rate_min: f64,
        rate_max: f64,
        decimals: u8,
    },
    /// Counter growing by exactly `step` per scrape (e.g. the scrape handler's own
    /// request counter).
    Step { step: f64 },
    /// Counter that mostly stays flat (errors, drops): grows by `1..=max_step` with
    /// probability `probability` per scrape.
    Rare { probability: f64, max_step: u32 },
    /// Gauge random walk on a grid of `step`: with probability `move_probability` it
    /// moves by one to three steps up or down, clamped to `[min, max]`.
    Walk {
        min: f64,
        max: f64,
        step: f64,
        move_probability: f64,
        decimals: u8,
    },
    /// Noisy full-precision gauge (durations): a per-series mean picked in
    /// `[min, max]`, each scrape uniformly within `mean * (1 ± spread)`.
    Noise { min: f64, max: f64, spread: f64 },
    /// The scrape time in seconds with millisecond precision (`node_time_seconds`).
    WallClock,
    /// Cumulative count of a classic histogram (`_bucket` or `_count`): grows by
    /// `floor(requests * share)` per scrape, where `requests` is drawn once per target
    /// and scrape and `share` is the fraction of requests at or below the bucket's
    /// bound. Every bucket of a target sees the same draw, so buckets stay cumulative
    /// (`le` ascending never counts less) and `+Inf` equals `_count`.
    HistogramCount { share: f64 },
    /// `_sum` of a classic histogram: grows by `requests * share * mean` (3 decimals).
    HistogramSum { share: f64, mean: f64 },
}

/// One series of a target, without the target's own labels.
#[derive(Debug, Clone)]
pub(crate) struct SeriesTemplate {
    /// Metric name and metric-specific labels; `__name__` first, others in any order.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) behavior: Behavior,
}

/// Upper bounds of the classic histogram buckets (Prometheus' client default buckets).
const HISTOGRAM_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Handlers of the histogram family: (path, share of requests, median seconds).
const HANDLERS: [(&str, f64, f64); 6] = [
    ("/api/v1/query_range", 0.30, 0.120),
    ("/api/v1/query", 0.25, 0.040),
    ("/api/v1/series", 0.15, 0.015),
    ("/api/v1/labels", 0.10, 0.008),
    ("/metrics", 0.12, 0.004),
    ("/-/ready", 0.08, 0.001),
];

/// Series of one classic histogram family per target,
/// `http_request_duration_seconds{handler}` with `_bucket{le}` (11 bounds and
/// `+Inf`), `_sum` and `_count`: 14 series per handler, `handlers` handlers (the
/// first six have fixed names, more are `/handler/N`). Latencies are exponentially
/// distributed around each handler's median. Empty for 0 handlers.
pub(crate) fn histograms(handlers: usize) -> Vec<SeriesTemplate> {
    let mut b = Builder { out: Vec::new() };
    for index in 0..handlers {
        let (path, share, median) = match HANDLERS.get(index) {
            Some((path, share, median)) => ((*path).to_owned(), *share, *median),
            None => (format!("/handler/{index}"), 0.05, 0.05),
        };
        let handler = [("handler", path.as_str())];
        for bound in HISTOGRAM_BOUNDS {
            // Exponential distribution with this median: P(X <= le) = 1 - 2^(-le/median).
            let below = 1.0 - (-bound / median * std::f64::consts::LN_2).exp();
            let le = bound.to_string();
            b.add(
                "http_request_duration_seconds_bucket",
                &[("handler", path.as_str()), ("le", le.as_str())],
                Behavior::HistogramCount {
                    share: share * below,
                },
            );
        }
        b.add(
            "http_request_duration_seconds_bucket",
            &[("handler", path.as_str()), ("le", "+Inf")],
            Behavior::HistogramCount { share },
        );
        b.add(
            "http_request_duration_seconds_sum",
            &handler,
            Behavior::HistogramSum {
                share,
                mean: median / std::f64::consts::LN_2,
            },
        );
        b.add(
            "http_request_duration_seconds_count",
            &handler,
            Behavior::HistogramCount { share },
        );
    }
    b.out
}

/// Sizes of the repeated parts of a host.
#[derive(Debug, Clone, Copy)]
struct HostShape {
    cpus: usize,
    disks: usize,
    filesystems: usize,
    network_devices: usize,
}

impl HostShape {
    fn scaled(scale: usize) -> HostShape {
        HostShape {
            cpus: 2 * scale,
            disks: scale,
            filesystems: scale + 2,
            network_devices: scale + 1,
        }
    }
}

/// Returns exactly `series_per_target` series templates in a node_exporter-like mix.
pub(crate) fn build(series_per_target: usize) -> Vec<SeriesTemplate> {
    let mut scale = 1;
    loop {
        let mut templates = host_series(HostShape::scaled(scale));
        if templates.len() >= series_per_target {
            templates.truncate(series_per_target);
            return templates;
        }
        scale += 1;
    }
}

/// [`build`] followed by [`histograms`]`(handlers)`.
pub(crate) fn with_histograms(series_per_target: usize, handlers: usize) -> Vec<SeriesTemplate> {
    let mut templates = build(series_per_target);
    templates.extend(histograms(handlers));
    templates
}

struct Builder {
    out: Vec<SeriesTemplate>,
}

impl Builder {
    fn add(&mut self, name: &str, labels: &[(&str, &str)], behavior: Behavior) {
        let mut all = Vec::with_capacity(labels.len() + 1);
        all.push(("__name__".to_owned(), name.to_owned()));
        all.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.out.push(SeriesTemplate {
            labels: all,
            behavior,
        });
    }
}

const fn constant(value: f64) -> Behavior {
    Behavior::Constant {
        min: value,
        max: value,
        decimals: 0,
    }
}

const fn constant_in(min: f64, max: f64) -> Behavior {
    Behavior::Constant {
        min,
        max,
        decimals: 0,
    }
}

const fn counter(rate_min: f64, rate_max: f64, decimals: u8) -> Behavior {
    Behavior::Counter {
        rate_min,
        rate_max,
        decimals,
    }
}

const fn rare(probability: f64, max_step: u32) -> Behavior {
    Behavior::Rare {
        probability,
        max_step,
    }
}

const fn walk(min: f64, max: f64, step: f64, move_probability: f64, decimals: u8) -> Behavior {
    Behavior::Walk {
        min,
        max,
        step,
        move_probability,
        decimals,
    }
}

const fn noise(min: f64, max: f64, spread: f64) -> Behavior {
    Behavior::Noise { min, max, spread }
}

const PAGE: f64 = 4096.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

fn host_series(shape: HostShape) -> Vec<SeriesTemplate> {
    let mut b = Builder { out: Vec::new() };
    scrape_series(&mut b);
    cpu_series(&mut b, shape.cpus);
    memory_series(&mut b);
    filesystem_series(&mut b, shape.filesystems);
    network_series(&mut b, shape.network_devices);
    disk_series(&mut b, shape.disks);
    host_wide_series(&mut b);
    collector_series(&mut b);
    go_and_process_series(&mut b);
    b.out
}

fn scrape_series(b: &mut Builder) {
    b.add("up", &[], constant(1.0));
    b.add("scrape_duration_seconds", &[], noise(0.02, 0.2, 0.3));
    b.add("scrape_samples_scraped", &[], constant_in(600.0, 1200.0));
    b.add(
        "scrape_samples_post_metric_relabeling",
        &[],
        constant_in(600.0, 1200.0),
    );
    b.add("scrape_series_added", &[], constant(0.0));
}

fn cpu_series(b: &mut Builder, cpus: usize) {
    // (mode, seconds per second per cpu)
    const MODES: [(&str, f64, f64); 8] = [
        ("idle", 0.6, 0.95),
        ("iowait", 0.0, 0.02),
        ("irq", 0.0, 0.0),
        ("nice", 0.0, 0.001),
        ("softirq", 0.001, 0.01),
        ("steal", 0.0, 0.005),
        ("system", 0.02, 0.08),
        ("user", 0.05, 0.3),
    ];
    for cpu in 0..cpus {
        let cpu = cpu.to_string();
        for (mode, low, high) in MODES {
            b.add(
                "node_cpu_seconds_total",
                &[("cpu", &cpu), ("mode", mode)],
                counter(low, high, 2),
            );
        }
        for mode in ["nice", "user"] {
            b.add(
                "node_cpu_guest_seconds_total",
                &[("cpu", &cpu), ("mode", mode)],
                constant(0.0),
            );
        }
        b.add(
            "node_cpu_scaling_frequency_hertz",
            &[("cpu", &cpu)],
            walk(1.2e9, 3.5e9, 1e8, 0.4, 0),
        );
        b.add(
            "node_softnet_processed_total",
            &[("cpu", &cpu)],
            counter(10.0, 500.0, 0),
        );
        b.add(
            "node_softnet_dropped_total",
            &[("cpu", &cpu)],
            rare(0.01, 2),
        );
        b.add(
            "node_softnet_times_squeezed_total",
            &[("cpu", &cpu)],
            rare(0.05, 3),
        );
        b.add(
            "node_schedstat_running_seconds_total",
            &[("cpu", &cpu)],
            counter(0.05, 0.4, FULL_PRECISION),
        );
        b.add(
            "node_schedstat_waiting_seconds_total",
            &[("cpu", &cpu)],
            counter(0.001, 0.05, FULL_PRECISION),
        );
        b.add(
            "node_schedstat_timeslices_total",
            &[("cpu", &cpu)],
            counter(50.0, 2000.0, 0),
        );
        b.add(
            "node_hwmon_temp_celsius",
            &[
                ("chip", &format!("platform_coretemp_{cpu}")),
                ("sensor", "temp1"),
            ],
            walk(30.0, 85.0, 1.0, 0.3, 0),
        );
    }
}

fn memory_series(b: &mut Builder) {
    let walking = |low: f64, high: f64| walk(low * GIB, high * GIB, 256.0 * PAGE, 0.7, 0);
    let fixed: [(&str, Behavior); 34] = [
        ("MemTotal", constant_in(8.0 * GIB, 64.0 * GIB)),
        ("MemFree", walking(0.5, 8.0)),
        ("MemAvailable", walking(2.0, 16.0)),
        ("Buffers", walking(0.05, 0.5)),
        ("Cached", walking(1.0, 12.0)),
        ("SwapCached", constant(0.0)),
        ("SwapTotal", constant_in(0.0, 4.0 * GIB)),
        ("SwapFree", constant_in(0.0, 4.0 * GIB)),
        ("Active", walking(1.0, 10.0)),
        ("Inactive", walking(1.0, 10.0)),
        ("Active_anon", walking(0.5, 6.0)),
        ("Inactive_anon", walking(0.1, 1.0)),
        ("Active_file", walking(0.5, 6.0)),
        ("Inactive_file", walking(0.5, 6.0)),
        ("Unevictable", constant_in(0.0, 64.0 * PAGE)),
        ("Mlocked", constant_in(0.0, 64.0 * PAGE)),
        (
            "Dirty",
            walk(0.0, 64.0 * 1024.0 * 1024.0, 16.0 * PAGE, 0.9, 0),
        ),
        ("Writeback", constant(0.0)),
        ("AnonPages", walking(0.5, 6.0)),
        ("Mapped", walking(0.1, 1.0)),
        ("Shmem", walking(0.01, 0.2)),
        ("KReclaimable", walking(0.1, 1.0)),
        ("Slab", walking(0.1, 1.5)),
        ("SReclaimable", walking(0.1, 1.0)),
        ("SUnreclaim", walking(0.05, 0.5)),
        ("KernelStack", walk(8e6, 3e7, 16384.0, 0.3, 0)),
        ("PageTables", walk(1e7, 1e8, PAGE, 0.5, 0)),
        ("CommitLimit", constant_in(4.0 * GIB, 36.0 * GIB)),
        ("Committed_AS", walking(2.0, 20.0)),
        ("VmallocTotal", constant(35_184_372_087_808.0)),
        ("VmallocUsed", walk(2e7, 6e7, PAGE, 0.2, 0)),
        ("HugePages_Total", constant(0.0)),
        ("Hugepagesize", constant(2_097_152.0)),
        ("DirectMap2M", constant_in(8.0 * GIB, 64.0 * GIB)),
    ];
    for (field, behavior) in fixed {
        let name = if field.starts_with("HugePages_") {
            format!("node_memory_{field}")
        } else {
            format!("node_memory_{field}_bytes")
        };
        b.add(&name, &[], behavior);
    }
}

fn filesystem_series(b: &mut Builder, filesystems: usize) {
    for index in 0..filesystems {
        let (device, fstype, mountpoint) = match index {
            0 => ("/dev/sda1".to_owned(), "ext4", "/".to_owned()),
            1 => ("/dev/sda15".to_owned(), "vfat", "/boot/efi".to_owned()),
            2 => ("tmpfs".to_owned(), "tmpfs", "/run".to_owned()),
            n => (
                format!("/dev/sd{}1", letter(n - 2)),
                "xfs",
                format!("/data{n}"),
            ),
        };
        let labels = [
            ("device", device.as_str()),
            ("fstype", fstype),
            ("mountpoint", mountpoint.as_str()),
        ];
        b.add(
            "node_filesystem_size_bytes",
            &labels,
            constant_in(10.0 * GIB, 2000.0 * GIB),
        );
        b.add(
            "node_filesystem_avail_bytes",
            &labels,
            walk(1.0 * GIB, 900.0 * GIB, 64.0 * PAGE, 0.8, 0),
        );
        b.add(
            "node_filesystem_free_bytes",
            &labels,
            walk(1.0 * GIB, 1000.0 * GIB, 64.0 * PAGE, 0.8, 0),
        );
        b.add("node_filesystem_files", &labels, constant_in(1e6, 1e8));
        b.add(
            "node_filesystem_files_free",
            &labels,
            walk(5e5, 9e7, 1.0, 0.6, 0),
        );
        b.add("node_filesystem_readonly", &labels, constant(0.0));
        b.add("node_filesystem_device_error", &labels, constant(0.0));
    }
}

fn letter(index: usize) -> char {
    // Index is taken modulo 26, so the addition stays inside 'a'..='z'.
    char::from(b'a' + (index % 26) as u8)
}

fn network_series(b: &mut Builder, devices: usize) {
    for index in 0..devices {
        let device = match index {
            0 => "lo".to_owned(),
            1 => "eth0".to_owned(),
            2 => "docker0".to_owned(),
            n => format!("veth{:07x}", n * 0x9e37),
        };
        let labels = [("device", device.as_str())];
        for direction in ["receive", "transmit"] {
            b.add(
                &format!("node_network_{direction}_bytes_total"),
                &labels,
                counter(1e3, 5e6, 0),
            );
            b.add(
                &format!("node_network_{direction}_packets_total"),
                &labels,
                counter(5.0, 4000.0, 0),
            );
            b.add(
                &format!("node_network_{direction}_errs_total"),
                &labels,
                rare(0.002, 2),
            );
            b.add(
                &format!("node_network_{direction}_drop_total"),
                &labels,
                rare(0.02, 5),
            );
            b.add(
                &format!("node_network_{direction}_fifo_total"),
                &labels,
                constant(0.0),
            );
            b.add(
                &format!("node_network_{direction}_compressed_total"),
                &labels,
                constant(0.0),
            );
        }
        b.add(
            "node_network_receive_multicast_total",
            &labels,
            rare(0.3, 4),
        );
        b.add("node_network_receive_frame_total", &labels, constant(0.0));
        b.add("node_network_transmit_colls_total", &labels, constant(0.0));
        b.add(
            "node_network_transmit_carrier_total",
            &labels,
            constant(0.0),
        );
        b.add("node_network_up", &labels, constant(1.0));
        b.add("node_network_carrier", &labels, constant(1.0));
        b.add("node_network_mtu_bytes", &labels, constant(1500.0));
        b.add("node_network_speed_bytes", &labels, constant(1.25e9));
    }
}

fn disk_series(b: &mut Builder, disks: usize) {
    for index in 0..disks {
        let device = if index < 4 {
            format!("sd{}", letter(index))
        } else {
            format!("nvme{}n1", index - 4)
        };
        let labels = [("device", device.as_str())];
        b.add(
            "node_disk_reads_completed_total",
            &labels,
            counter(0.5, 100.0, 0),
        );
        b.add(
            "node_disk_writes_completed_total",
            &labels,
            counter(2.0, 300.0, 0),
        );
        b.add(
            "node_disk_reads_merged_total",
            &labels,
            counter(0.0, 10.0, 0),
        );
        b.add(
            "node_disk_writes_merged_total",
            &labels,
            counter(0.5, 80.0, 0),
        );
        b.add("node_disk_read_bytes_total", &labels, counter(1e3, 2e6, 0));
        b.add(
            "node_disk_written_bytes_total",
            &labels,
            counter(1e4, 8e6, 0),
        );
        b.add(
            "node_disk_read_time_seconds_total",
            &labels,
            counter(0.0005, 0.05, 3),
        );
        b.add(
            "node_disk_write_time_seconds_total",
            &labels,
            counter(0.001, 0.2, 3),
        );
        b.add(
            "node_disk_io_time_seconds_total",
            &labels,
            counter(0.001, 0.2, 3),
        );
        b.add(
            "node_disk_io_time_weighted_seconds_total",
            &labels,
            counter(0.001, 0.3, 3),
        );
        b.add(
            "node_disk_discards_completed_total",
            &labels,
            rare(0.05, 20),
        );
        b.add("node_disk_io_now", &labels, walk(0.0, 4.0, 1.0, 0.3, 0));
    }
}

fn host_wide_series(b: &mut Builder) {
    for name in ["node_load1", "node_load5", "node_load15"] {
        b.add(name, &[], walk(0.0, 6.0, 0.01, 0.9, 2));
    }
    b.add("node_context_switches_total", &[], counter(1e3, 3e4, 0));
    b.add("node_intr_total", &[], counter(500.0, 2e4, 0));
    b.add("node_forks_total", &[], counter(1.0, 30.0, 0));
    b.add("node_procs_running", &[], walk(1.0, 8.0, 1.0, 0.6, 0));
    b.add("node_procs_blocked", &[], walk(0.0, 2.0, 1.0, 0.2, 0));
    b.add("node_boot_time_seconds", &[], constant_in(1.70e9, 1.76e9));
    b.add("node_time_seconds", &[], Behavior::WallClock);
    b.add(
        "node_entropy_available_bits",
        &[],
        walk(256.0, 4096.0, 1.0, 0.5, 0),
    );
    b.add("node_filefd_allocated", &[], walk(1e3, 2e4, 1.0, 0.7, 0));
    b.add(
        "node_filefd_maximum",
        &[],
        constant(9.223_372_036_854_776e18),
    );
    b.add(
        "node_sockstat_sockets_used",
        &[],
        walk(100.0, 3000.0, 1.0, 0.7, 0),
    );
    b.add(
        "node_sockstat_TCP_inuse",
        &[],
        walk(10.0, 1000.0, 1.0, 0.6, 0),
    );
    b.add("node_sockstat_TCP_tw", &[], walk(0.0, 500.0, 1.0, 0.6, 0));
    b.add("node_sockstat_UDP_inuse", &[], walk(0.0, 20.0, 1.0, 0.1, 0));
    for (field, behavior) in [
        ("pgfault", counter(100.0, 1e4, 0)),
        ("pgmajfault", rare(0.3, 20)),
        ("pgpgin", counter(1.0, 2e3, 0)),
        ("pgpgout", counter(10.0, 8e3, 0)),
        ("pswpin", constant(0.0)),
        ("pswpout", constant(0.0)),
        ("oom_kill", constant(0.0)),
    ] {
        b.add(&format!("node_vmstat_{field}"), &[], behavior);
    }
    for (field, behavior) in [
        ("Tcp_ActiveOpens", counter(0.1, 30.0, 0)),
        ("Tcp_PassiveOpens", counter(0.1, 30.0, 0)),
        ("Tcp_CurrEstab", walk(5.0, 500.0, 1.0, 0.6, 0)),
        ("Tcp_InSegs", counter(10.0, 5e3, 0)),
        ("Tcp_OutSegs", counter(10.0, 5e3, 0)),
        ("Tcp_RetransSegs", rare(0.3, 10)),
        ("Tcp_InErrs", rare(0.01, 2)),
        ("Udp_InDatagrams", counter(0.1, 50.0, 0)),
        ("Udp_OutDatagrams", counter(0.1, 50.0, 0)),
        ("Udp_InErrors", constant(0.0)),
        ("TcpExt_ListenDrops", rare(0.005, 3)),
        ("TcpExt_ListenOverflows", rare(0.005, 3)),
        ("TcpExt_SyncookiesSent", constant(0.0)),
        ("TcpExt_TCPTimeouts", rare(0.2, 5)),
        ("Icmp_InMsgs", counter(0.0, 2.0, 0)),
        ("Icmp_OutMsgs", counter(0.0, 2.0, 0)),
        ("Ip_Forwarding", constant(1.0)),
    ] {
        b.add(&format!("node_netstat_{field}"), &[], behavior);
    }
    b.add(
        "node_uname_info",
        &[
            ("domainname", "(none)"),
            ("machine", "x86_64"),
            ("nodename", "host"),
            ("release", "6.1.0-27-amd64"),
            ("sysname", "Linux"),
            ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1"),
        ],
        constant(1.0),
    );
    b.add(
        "node_exporter_build_info",
        &[
            ("branch", "HEAD"),
            ("goversion", "go1.22.4"),
            ("revision", "ac3e25c1"),
            ("version", "1.8.2"),
        ],
        constant(1.0),
    );
}

fn collector_series(b: &mut Builder) {
    const COLLECTORS: [&str; 44] = [
        "arp",
        "bcache",
        "bonding",
        "btrfs",
        "conntrack",
        "cpu",
        "cpufreq",
        "diskstats",
        "dmi",
        "edac",
        "entropy",
        "fibrechannel",
        "filefd",
        "filesystem",
        "hwmon",
        "infiniband",
        "ipvs",
        "loadavg",
        "mdadm",
        "meminfo",
        "netclass",
        "netdev",
        "netstat",
        "nfs",
        "nfsd",
        "nvme",
        "os",
        "powersupplyclass",
        "pressure",
        "rapl",
        "schedstat",
        "selinux",
        "sockstat",
        "softnet",
        "stat",
        "tapestats",
        "textfile",
        "thermal_zone",
        "time",
        "timex",
        "udp_queues",
        "uname",
        "vmstat",
        "xfs",
    ];
    for collector in COLLECTORS {
        let labels = [("collector", collector)];
        b.add(
            "node_scrape_collector_duration_seconds",
            &labels,
            noise(1e-5, 2e-2, 0.5),
        );
        b.add("node_scrape_collector_success", &labels, constant(1.0));
    }
}

fn go_and_process_series(b: &mut Builder) {
    b.add("go_goroutines", &[], walk(6.0, 12.0, 1.0, 0.2, 0));
    b.add("go_threads", &[], walk(6.0, 12.0, 1.0, 0.05, 0));
    b.add("go_info", &[("version", "go1.22.4")], constant(1.0));
    for quantile in ["0", "0.25", "0.5", "0.75", "1"] {
        b.add(
            "go_gc_duration_seconds",
            &[("quantile", quantile)],
            noise(2e-5, 5e-4, 0.4),
        );
    }
    b.add(
        "go_gc_duration_seconds_sum",
        &[],
        counter(1e-5, 1e-4, FULL_PRECISION),
    );
    b.add("go_gc_duration_seconds_count", &[], rare(0.5, 2));
    b.add("go_memstats_alloc_bytes", &[], walk(2e6, 8e6, 8.0, 0.95, 0));
    b.add("go_memstats_alloc_bytes_total", &[], counter(1e4, 5e5, 0));
    b.add(
        "go_memstats_heap_alloc_bytes",
        &[],
        walk(2e6, 8e6, 8.0, 0.95, 0),
    );
    b.add(
        "go_memstats_heap_idle_bytes",
        &[],
        walk(2e6, 8e6, 8192.0, 0.5, 0),
    );
    b.add(
        "go_memstats_heap_inuse_bytes",
        &[],
        walk(3e6, 9e6, 8192.0, 0.6, 0),
    );
    b.add(
        "go_memstats_heap_objects",
        &[],
        walk(1e4, 6e4, 1.0, 0.95, 0),
    );
    b.add(
        "go_memstats_heap_released_bytes",
        &[],
        walk(1e6, 6e6, 8192.0, 0.3, 0),
    );
    b.add("go_memstats_heap_sys_bytes", &[], constant_in(8e6, 2e7));
    b.add("go_memstats_mallocs_total", &[], counter(50.0, 3e3, 0));
    b.add("go_memstats_frees_total", &[], counter(50.0, 3e3, 0));
    b.add("go_memstats_lookups_total", &[], constant(0.0));
    b.add(
        "go_memstats_next_gc_bytes",
        &[],
        walk(4e6, 1.2e7, 8.0, 0.3, 0),
    );
    b.add("go_memstats_sys_bytes", &[], constant_in(1.5e7, 4e7));
    b.add("go_memstats_last_gc_time_seconds", &[], Behavior::WallClock);
    b.add("process_cpu_seconds_total", &[], counter(0.001, 0.05, 2));
    b.add("process_max_fds", &[], constant(1_048_576.0));
    b.add("process_open_fds", &[], walk(8.0, 14.0, 1.0, 0.1, 0));
    b.add(
        "process_resident_memory_bytes",
        &[],
        walk(1.5e7, 3e7, PAGE, 0.7, 0),
    );
    b.add(
        "process_start_time_seconds",
        &[],
        constant_in(1.70e9, 1.76e9),
    );
    b.add(
        "process_virtual_memory_bytes",
        &[],
        walk(7e8, 1.3e9, PAGE, 0.2, 0),
    );
    b.add(
        "process_virtual_memory_max_bytes",
        &[],
        constant(1.844_674_407_370_955_2e19),
    );
    for code in ["200", "500", "503"] {
        let behavior = if code == "200" {
            Behavior::Step { step: 1.0 }
        } else {
            constant(0.0)
        };
        b.add(
            "promhttp_metric_handler_requests_total",
            &[("code", code)],
            behavior,
        );
    }
    b.add(
        "promhttp_metric_handler_requests_in_flight",
        &[],
        constant(1.0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_has_exactly_the_requested_size() {
        for wanted in [1, 10, 100, 333, 500, 1000, 2500] {
            assert_eq!(build(wanted).len(), wanted);
        }
    }

    #[test]
    fn every_series_of_a_target_is_distinct() {
        let templates = build(3000);
        let mut seen = HashSet::new();
        for template in &templates {
            let mut labels = template.labels.clone();
            labels.sort();
            assert!(
                seen.insert(labels),
                "duplicate series {:?}",
                template.labels
            );
            let names: HashSet<_> = template.labels.iter().map(|(k, _)| k).collect();
            assert_eq!(names.len(), template.labels.len(), "duplicate label name");
        }
    }

    #[test]
    fn histogram_family_has_cumulative_buckets() {
        assert!(histograms(0).is_empty());
        let templates = histograms(7);
        assert_eq!(templates.len(), 7 * 14);
        for handler in templates.chunks(14) {
            let shares: Vec<f64> = handler[..12]
                .iter()
                .map(|t| match t.behavior {
                    Behavior::HistogramCount { share } => share,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert!(
                shares.windows(2).all(|pair| pair[0] <= pair[1]),
                "{shares:?}"
            );
            assert_eq!(handler[11].labels[2], ("le".to_owned(), "+Inf".to_owned()));
            assert_eq!(
                handler[13].behavior,
                Behavior::HistogramCount { share: shares[11] }
            );
        }
    }

    #[test]
    fn mix_is_node_exporter_like() {
        let templates = build(500);
        let cpu = templates
            .iter()
            .filter(|t| t.labels[0].1 == "node_cpu_seconds_total")
            .count();
        assert!(cpu >= 32, "cpu series: {cpu}");
        assert!(templates.iter().any(|t| t.labels[0].1 == "up"));
        assert!(
            templates
                .iter()
                .any(|t| t.labels[0].1 == "node_network_receive_bytes_total")
        );
    }
}
