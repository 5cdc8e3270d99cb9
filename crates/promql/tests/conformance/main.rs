//! PromQL conformance: runs Prometheus' own promqltest files (`../shared/testdata/promql`,
//! see its `SOURCE.md`) against [`sightline_promql::Engine`].
//!
//! `cargo test -p sightline-promql --test conformance` prints a per-file table and
//! fails if a case listed in `baseline.txt` no longer passes. Set
//! `UPDATE_CONFORMANCE=1` to rewrite `baseline.txt` and `../../CONFORMANCE.md`.
//! `CONFORMANCE_FILE=functions.test` runs one file; `CONFORMANCE_VERBOSE=1` prints
//! every failing case with its reason.

mod runner;
mod script;
mod series;
mod store;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use runner::{CaseResult, Class, Outcome};

/// Status of a case as written in `baseline.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Fail,
    /// Value right, warn/info expectations not met.
    Value,
    Pass,
}

impl Status {
    fn of(outcome: &Outcome) -> Status {
        match outcome {
            Outcome::Pass => Status::Pass,
            Outcome::PassValueOnly(_) => Status::Value,
            Outcome::Fail(_) => Status::Fail,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Value => "value",
            Status::Fail => "fail",
        }
    }
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Prometheus' test files live in the team's shared folder beside the repository
/// (`../shared/testdata/promql`), not in the repository itself; `PROMQL_TESTDATA`
/// overrides the location.
fn testdata_dir() -> PathBuf {
    std::env::var_os("PROMQL_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/promql"),
        PathBuf::from,
    )
}

/// Per-file counts.
#[derive(Debug, Default, Clone)]
struct Tally {
    float_pass: usize,
    float_total: usize,
    histogram_pass: usize,
    histogram_total: usize,
    unparseable_pass: usize,
    unparseable_total: usize,
    /// Value right but warn/info expectations not met (not counted as passes).
    value_only: usize,
    panics: usize,
}

impl Tally {
    fn add(&mut self, result: &CaseResult) {
        let pass = result.outcome == Outcome::Pass;
        let (passed, total) = match result.class {
            Class::Float => (&mut self.float_pass, &mut self.float_total),
            Class::Histogram => (&mut self.histogram_pass, &mut self.histogram_total),
            Class::Unparseable => (&mut self.unparseable_pass, &mut self.unparseable_total),
        };
        *total += 1;
        if pass {
            *passed += 1;
        }
        if matches!(result.outcome, Outcome::PassValueOnly(_)) {
            self.value_only += 1;
        }
        if matches!(&result.outcome, Outcome::Fail(reason) if reason.starts_with("engine panicked"))
        {
            self.panics += 1;
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.float_pass += other.float_pass;
        self.float_total += other.float_total;
        self.histogram_pass += other.histogram_pass;
        self.histogram_total += other.histogram_total;
        self.unparseable_pass += other.unparseable_pass;
        self.unparseable_total += other.unparseable_total;
        self.value_only += other.value_only;
        self.panics += other.panics;
    }

    fn cases(&self) -> usize {
        self.float_total + self.histogram_total + self.unparseable_total
    }
}

fn ratio(pass: usize, total: usize) -> String {
    if total == 0 {
        return "-".to_string();
    }
    format!(
        "{pass}/{total} ({:.1}%)",
        100.0 * pass as f64 / total as f64
    )
}

fn table(tallies: &BTreeMap<String, Tally>, total: &Tally) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| file | cases | float pass | native-histogram pass | unparseable pass | value ok, annotations not | panics |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let rows = tallies
        .iter()
        .map(|(f, t)| (f.as_str(), t))
        .chain([("**total**", total)]);
    for (file, t) in rows {
        let _ = writeln!(
            out,
            "| {file} | {} | {} | {} | {} | {} | {} |",
            t.cases(),
            ratio(t.float_pass, t.float_total),
            ratio(t.histogram_pass, t.histogram_total),
            ratio(t.unparseable_pass, t.unparseable_total),
            t.value_only,
            t.panics
        );
    }
    out
}

fn read_baseline(path: &Path) -> BTreeMap<String, Status> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let id = parts.next()?.to_string();
            let status = match parts.next() {
                Some("value") => Status::Value,
                _ => Status::Pass,
            };
            Some((id, status))
        })
        .collect()
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = sightline_model::time::civil_from_days((seconds / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

fn conformance_md(
    tallies: &BTreeMap<String, Tally>,
    total: &Tally,
    passing: usize,
    float_failures: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# PromQL conformance\n");
    let _ = writeln!(
        out,
        "Generated by `UPDATE_CONFORMANCE=1 cargo test -p sightline-promql --test conformance` on {}.\n",
        today()
    );
    let _ = writeln!(
        out,
        "The cases are Prometheus' own PromQL tests (`promql/promqltest/testdata` at v3.5.0,\n\
         read from the team's `../shared/testdata/promql/`), run by our own reader of the promqltest\n\
         format (`tests/conformance/`). A case is one `eval` statement; it passes when the\n\
         engine's result, error and warn/info annotations match as in Prometheus' `test.go`\n\
         (labels exact, floats within relative 1e-6, NaN equals NaN, order only for ordered\n\
         cases). As in `test.go`, instant cases are also re-run as a range query around the\n\
         same time, and with every selector pinned by `@` at other evaluation times (skipped\n\
         when the query already has an `@`); all runs must agree. Each case runs on its own\n\
         thread with a 10 s limit; an engine panic fails that case only. The engine runs with\n\
         delayed name removal on (`EngineOptions::delayed_name_removal`), as promqltest's\n\
         `NewTestEngine` sets `EnableDelayedNameRemoval`: the test files are written for it.\n"
    );
    let _ = writeln!(
        out,
        "Columns: *native-histogram* cases load or expect native histograms (`{{{{...}}}}`,\n\
         `load_with_nhcb`), or are in `native_histograms.test`; the engine is float-only so\n\
         they are reported apart. *unparseable* cases use syntax `promql-parser` does not\n\
         accept (experimental duration arithmetic such as `[26m+4m]`). *value ok,\n\
         annotations not* counts cases whose result is right but whose expected warn/info\n\
         annotations are missing (not counted as passes).\n"
    );
    out.push_str(&table(tallies, total));
    let _ = writeln!(
        out,
        "\n{passing} cases pass fully; their ids are in `tests/conformance/baseline.txt`, and\n\
         `cargo test` fails if one of them regresses."
    );
    if !float_failures.is_empty() {
        let _ = writeln!(out, "\n## Float cases that do not pass\n");
        for failure in float_failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    out
}

#[test]
fn promql_conformance() {
    let only = std::env::var("CONFORMANCE_FILE").ok();
    let verbose = std::env::var_os("CONFORMANCE_VERBOSE").is_some();
    let update = std::env::var("UPDATE_CONFORMANCE").is_ok_and(|v| v == "1");
    let dir = testdata_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test"))
        .filter(|name| only.as_deref().is_none_or(|o| o == name))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());

    // Engine panics are caught per case and reported; keep their backtraces quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let mut tallies = BTreeMap::new();
    let mut total = Tally::default();
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut runner_errors = Vec::new();
    let mut float_failures = Vec::new();
    let mut path_mismatches = Vec::new();
    let started = std::time::Instant::now();
    for file in &files {
        let text =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let commands = match script::parse_script(&text) {
            Ok(commands) => commands,
            Err(error) => {
                runner_errors.push(format!("{file}: {error}"));
                continue;
            }
        };
        for command in &commands {
            if let script::Command::BadEval { line, error } = command {
                runner_errors.push(format!("{file}:{line}: {error}"));
            }
        }
        let results = runner::run_script(file, &commands, true);
        // The step-by-step path (rollups off) is the reference the rollups replace:
        // every case must come out the same on both.
        let reference = runner::run_script(file, &commands, false);
        for (rolled, stepped) in results.iter().zip(&reference) {
            if rolled.outcome != stepped.outcome {
                path_mismatches.push(format!(
                    "{file}:{} `{}`: with rollups {:?}, step by step {:?}",
                    rolled.line, rolled.expr, rolled.outcome, stepped.outcome
                ));
            }
        }
        let mut tally = Tally::default();
        for result in &results {
            tally.add(result);
            statuses.insert(
                format!("{file}:{}", result.line),
                Status::of(&result.outcome),
            );
            if let (Class::Float, Outcome::Fail(reason) | Outcome::PassValueOnly(reason)) =
                (result.class, &result.outcome)
            {
                let reason: String = reason.chars().take(200).collect();
                float_failures.push(format!(
                    "`{file}:{}` `{}`: {}",
                    result.line,
                    result.expr,
                    reason.replace('`', "'")
                ));
            }
            if verbose && result.outcome != Outcome::Pass {
                let reason = match &result.outcome {
                    Outcome::Fail(r) | Outcome::PassValueOnly(r) => r.as_str(),
                    Outcome::Pass => "",
                };
                println!(
                    "{file}:{} [{:?}] {} => {reason}",
                    result.line, result.class, result.expr
                );
            }
        }
        total.merge(&tally);
        tallies.insert(file.clone(), tally);
    }
    std::panic::set_hook(default_hook);

    println!("{}", table(&tallies, &total));
    println!(
        "{} eval statements in {} files, {:.1}s",
        total.cases(),
        files.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        runner_errors.is_empty(),
        "the runner could not read: {runner_errors:#?}"
    );
    assert!(
        path_mismatches.is_empty(),
        "{} cases differ between rollups and step-by-step evaluation:\n  {}",
        path_mismatches.len(),
        path_mismatches.join("\n  ")
    );

    let baseline_path = conformance_dir().join("baseline.txt");
    let baseline = read_baseline(&baseline_path);
    let in_scope = |id: &str| {
        only.as_deref()
            .is_none_or(|o| id.split(':').next() == Some(o))
    };
    let mut regressions = Vec::new();
    for (id, was) in baseline.iter().filter(|(id, _)| in_scope(id)) {
        let now = statuses.get(id).copied().unwrap_or(Status::Fail);
        if now < *was {
            regressions.push(format!("{id}: was {}, now {}", was.name(), now.name()));
        }
    }
    let improved: Vec<String> = statuses
        .iter()
        .filter(|(id, now)| **now > baseline.get(*id).copied().unwrap_or(Status::Fail))
        .map(|(id, now)| format!("{id} ({})", now.name()))
        .collect();
    if !improved.is_empty() {
        println!(
            "{} cases pass beyond the baseline; run with UPDATE_CONFORMANCE=1 to record them:\n  {}",
            improved.len(),
            improved.join("\n  ")
        );
    }

    if update {
        assert!(
            only.is_none(),
            "UPDATE_CONFORMANCE=1 needs a run of all files"
        );
        let mut text = String::from(
            "# Cases of ../shared/testdata/promql that pass (`pass`) or whose value is right\n\
             # but warn/info annotations are not (`value`). Rewritten by UPDATE_CONFORMANCE=1;\n\
             # `cargo test` fails if one of these regresses.\n",
        );
        for (id, status) in statuses.iter().filter(|(_, s)| **s != Status::Fail) {
            let _ = writeln!(text, "{id} {}", status.name());
        }
        let passing = statuses.values().filter(|s| **s == Status::Pass).count();
        std::fs::write(&baseline_path, text).unwrap_or_else(|e| panic!("write baseline: {e}"));
        let md_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("CONFORMANCE.md");
        std::fs::write(
            &md_path,
            conformance_md(&tallies, &total, passing, &float_failures),
        )
        .unwrap_or_else(|e| panic!("write CONFORMANCE.md: {e}"));
        println!(
            "wrote {} and {}",
            baseline_path.display(),
            md_path.display()
        );
    }

    if update && !regressions.is_empty() {
        println!(
            "accepted {} regressions:\n  {}",
            regressions.len(),
            regressions.join("\n  ")
        );
        return;
    }
    assert!(
        regressions.is_empty(),
        "{} cases of baseline.txt no longer pass:\n  {}",
        regressions.len(),
        regressions.join("\n  ")
    );
}

/// The runner must fail wrong expectations, or the pass rates mean nothing. Needs an
/// engine that evaluates a plain selector at all.
#[test]
fn runner_rejects_wrong_expectations() {
    let script = "load 1m\n  foo{a=\"x\"} 1 2 3\n  foo{a=\"y\"} 5x2\n\n\
        eval instant at 2m foo\n  foo{a=\"x\"} 3\n  foo{a=\"y\"} 5\n\n\
        eval instant at 2m foo\n  foo{a=\"x\"} 4\n  foo{a=\"y\"} 5\n\n\
        eval instant at 2m foo\n  foo{a=\"x\"} 3\n\n\
        eval instant at 2m foo\n  foo{a=\"x\"} 3\n  foo{a=\"y\"} 5\n  foo{a=\"z\"} 5\n\n\
        eval_fail instant at 2m foo\n\n\
        eval range from 0 to 2m step 1m foo{a=\"x\"}\n  foo{a=\"x\"} 1 2 3\n\n\
        eval range from 0 to 2m step 1m foo{a=\"x\"}\n  foo{a=\"x\"} 1 _ 3\n\n\
        eval instant at 2m scalar(foo{a=\"x\"})\n  3\n\n\
        eval instant at 2m scalar(foo{a=\"x\"})\n  3.5\n";
    let commands = script::parse_script(script).expect("test script parses");
    let results = runner::run_script("self_test.test", &commands, true);
    let passed: Vec<bool> = results.iter().map(|r| r.outcome == Outcome::Pass).collect();
    if !passed[0] {
        // The engine cannot evaluate a plain selector yet: nothing to check.
        println!("engine not ready: {:?}", results[0].outcome);
        return;
    }
    assert_eq!(
        passed,
        vec![true, false, false, false, false, true, false, true, false],
        "{results:#?}"
    );
}
