#!/usr/bin/env bash
# Query latency: Sightline vs Prometheus vs VictoriaMetrics holding the same week of
# node_exporter-like data, one system at a time, on fresh data dirs and loopback
# ports; then the "Query latency" section of bench/RESULTS.md.
#
#   bench/query_bench.sh                         # defaults: ~1,500 series, 7 days at 60s
#   DAYS=1 RUNS=3 SKIP_BUILD=1 bench/query_bench.sh   # quick smoke run
#   SYSTEMS="sightline victoriametrics" bench/query_bench.sh
#
# Every knob is an environment variable; see bench/README.md ("Query latency").
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")

# Data (the same for every system).
TARGETS=${TARGETS:-6}
SERIES_PER_TARGET=${SERIES_PER_TARGET:-200}
HISTOGRAMS=${HISTOGRAMS:-4}
DAYS=${DAYS:-7}
INTERVAL_SECONDS=${INTERVAL_SECONDS:-60}
SEED=${SEED:-1}
# One connection: the week is sent in time order as fast as it is accepted (~7 hours of
# data time per second), and with two a connection that lags behind the other by a
# fraction of a second can fall behind a head cut and see its samples refused as too
# old (as Prometheus would refuse them).
CONCURRENCY=${CONCURRENCY:-1}
# Timing.
QUERIES=${QUERIES:-$BENCH_DIR/queries.txt}
RANGES=${RANGES:-"1h 24h 7d"}
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-7}
MIN_RUNS=${MIN_RUNS:-3}
BUDGET_SECONDS=${BUDGET_SECONDS:-20}
# Which systems, in order.
SYSTEMS=${SYSTEMS:-"sightline prometheus victoriametrics"}
# Binaries.
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SIGHTLINE_BIN=${SIGHTLINE_BIN:-$TARGET_DIR/release/sightline}
LOADGEN_BIN=${LOADGEN_BIN:-$TARGET_DIR/release/sightline-loadgen}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
PROMTOOL_BIN=${PROMTOOL_BIN:-/usr/bin/promtool}
VICTORIA_BIN=${VICTORIA_BIN:-/usr/bin/victoria-metrics}
# Output.
RESULTS=${RESULTS:-$BENCH_DIR/RESULTS.md}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
READY_TIMEOUT=${READY_TIMEOUT:-120}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sightline-qbench.XXXXXX")
OUT="$WORK/results"
mkdir -p "$OUT"
PIDS=()
SCRIPT_STARTED=$(date +%s)

log() { printf '%s query_bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# cleanup (trapped on EXIT), free_port, wait_ready, stop_process.
source "$BENCH_DIR/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

metric_value() { # base_url metric_name -> sum of its samples on /metrics
    curl -fsS --max-time 10 "$1/metrics" 2>/dev/null | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}

# Waits until `probe` prints the same thing `polls` times in a row, `every` seconds
# apart, after at least `min_seconds` since `since`; gives up after `max_seconds`.
wait_stable() { # since min_seconds every polls max_seconds probe...
    local since=$1 min_seconds=$2 every=$3 polls=$4 max_seconds=$5
    shift 5
    local previous="" same=0 current
    while :; do
        current=$("$@")
        if [ "$current" = "$previous" ]; then same=$((same + 1)); else same=0; fi
        previous=$current
        local elapsed=$(( $(date +%s) - since ))
        if [ "$elapsed" -ge "$min_seconds" ] && [ "$same" -ge "$polls" ]; then
            echo "$current"
            return 0
        fi
        if [ "$elapsed" -ge "$max_seconds" ]; then
            log "not stable after ${max_seconds}s (last: $current); going on"
            echo "$current"
            return 0
        fi
        sleep "$every"
    done
}

# ---------------------------------------------------------------- build
if [ "$SKIP_BUILD" != 1 ]; then
    packages=(-p sightline-loadgen)
    case " $SYSTEMS " in *" sightline "*) packages+=(-p sightline-server) ;; esac
    log "cargo build --release ${packages[*]}"
    (cd "$ROOT" && cargo build --release "${packages[@]}")
fi
[ -x "$LOADGEN_BIN" ] || { log "no loadgen binary at $LOADGEN_BIN"; exit 1; }

# One week (DAYS) of scrapes every INTERVAL_SECONDS, ending a few minutes ago.
ROUNDS=$(( DAYS * 86400 / INTERVAL_SECONDS ))
START_SECONDS=$(( $(date +%s) - ROUNDS * INTERVAL_SECONDS - 300 ))
WINDOW_SECONDS=$(( (DAYS + 1) * 86400 ))
DATA_ARGS=(--targets "$TARGETS" --series-per-target "$SERIES_PER_TARGET" --histograms "$HISTOGRAMS"
    --rounds "$ROUNDS" --interval "${INTERVAL_SECONDS}s" --seed "$SEED" --start "$START_SECONDS")
# Metrics whose sample counts are compared before anything is timed (plus all series).
CHECK_METRICS=(up node_cpu_seconds_total node_network_receive_bytes_total http_request_duration_seconds_bucket
    node_memory_MemAvailable_bytes node_filesystem_avail_bytes node_load1)
END_MS=""

load_remote_write() { # system base_url -> writes $OUT/$system-load.json
    log "$1: remote_write load: ${DATA_ARGS[*]} --concurrency $CONCURRENCY"
    "$LOADGEN_BIN" --url "$2/api/v1/write" "${DATA_ARGS[@]}" --concurrency "$CONCURRENCY" \
        --batch-size 2000 --threads 1 --progress 30s >"$OUT/$1-load.json"
    local sent accepted
    sent=$(jq -r .samples_sent "$OUT/$1-load.json")
    accepted=$(jq -r .samples_accepted "$OUT/$1-load.json")
    log "$1: $(jq -c '{samples_accepted, samples_per_second_accepted, wall_seconds, errors}' "$OUT/$1-load.json")"
    [ "$sent" = "$accepted" ] || log "$1: WARNING: only $accepted of $sent samples accepted"
    END_MS=$(jq -r .last_timestamp_ms "$OUT/$1-load.json")
}

# ---------------------------------------------------------------- Sightline
start_sightline() { # dir port
    cat >"$WORK/sightline.yaml" <<EOF
limits:
  ingestion_rate_samples_per_second: 1000000000
  ingestion_burst_samples: 2000000000
storage:
  metrics:
    # Like the peers here (Prometheus 30d, VictoriaMetrics 1y): the week fits, and
    # compaction builds blocks up to a tenth of it, as Prometheus does.
    retention_time: 30d
    # Housekeeping (block cuts, compaction) more often, so the bench waits less.
    maintenance_interval: 5s
EOF
    "$SIGHTLINE_BIN" serve --enable-admin-api --data-dir "$1" --listen "127.0.0.1:$2" \
        --otlp-grpc-listen "127.0.0.1:$(free_port)" --otlp-http-listen "127.0.0.1:$(free_port)" \
        --config "$WORK/sightline.yaml" >"$WORK/sightline.log" 2>&1 &
}
ready_path_sightline=/-/ready
blocks_sightline() { # dir -> "files bytes" of its blocks
    find "$1" -path '*/metrics/blocks/*' -type f -printf '%s\n' 2>/dev/null | awk '{ n++; s += $1 } END { print n + 0, s + 0 }'
}
load_sightline() { # base_url pid dir
    local began=$(date +%s)
    load_remote_write sightline "$1"
    local loaded=$(date +%s)
    curl -fsS --max-time 600 -X POST "$1/api/sightline/v1/admin/flush" >"$WORK/sightline-flush.out" 2>&1 \
        || log "sightline flush failed: $(head -c 300 "$WORK/sightline-flush.out")"
    # Compaction runs in the background (every maintenance_interval): wait until the
    # blocks stop changing.
    local blocks
    blocks=$(wait_stable "$(date +%s)" 10 5 3 600 blocks_sightline "$3")
    jq -n --arg version "$("$SIGHTLINE_BIN" --version 2>/dev/null | head -1)" \
        --arg note "remote_write ($(jq -r .samples_accepted "$OUT/sightline-load.json") samples in $(( loaded - began )) s), admin flush, compaction settled ($blocks block files/bytes) in $(( $(date +%s) - loaded )) s" \
        '{version: $version, load_note: $note}' >"$OUT/sightline-setup.json"
}

# ---------------------------------------------------------------- Prometheus
start_prometheus() { # dir port
    printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$WORK/prometheus.yml"
    "$PROMETHEUS_BIN" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$1" \
        --web.listen-address="127.0.0.1:$2" --storage.tsdb.retention.time=30d >"$WORK/prometheus.log" 2>&1 &
}
ready_path_prometheus=/-/ready
before_start_prometheus() { # dir: backfill blocks with promtool before the server starts
    local om="$WORK/openmetrics" began=$(date +%s)
    log "prometheus: writing OpenMetrics files: ${DATA_ARGS[*]}"
    "$LOADGEN_BIN" "${DATA_ARGS[@]}" --openmetrics-dir "$om" --openmetrics-window 2h >"$OUT/prometheus-load.json"
    log "prometheus: $(jq -c '{samples_written, files, bytes, wall_seconds}' "$OUT/prometheus-load.json")"
    local written=$(date +%s) file
    # One promtool run per 2h file: promtool 2.42 re-parses its input once per 2h block.
    for file in "$om"/*.om; do
        "$PROMTOOL_BIN" tsdb create-blocks-from openmetrics --quiet "$file" "$1" >>"$WORK/promtool.log" 2>&1 \
            || { log "promtool failed on $file: $(tail -n 3 "$WORK/promtool.log")"; return 1; }
        rm -f "$file"
    done
    PROMETHEUS_BACKFILL_NOTE="OpenMetrics files written in $(( written - began )) s, promtool create-blocks-from openmetrics (one 2h block per file) in $(( $(date +%s) - written )) s"
    END_MS=$(jq -r .last_timestamp_ms "$OUT/prometheus-load.json")
}
load_prometheus() { # base_url pid dir
    # Prometheus compacts the backfilled 2h blocks on its first compaction tick (a
    # minute after start): wait for it and for the block count to settle.
    local began=$(date +%s) blocks
    blocks=$(wait_stable "$began" 70 3 4 900 prometheus_state "$1")
    jq -n --arg version "$("$PROMETHEUS_BIN" --version 2>&1 | head -1)" \
        --arg note "$PROMETHEUS_BACKFILL_NOTE; compaction settled (blocks loaded, compactions: $blocks) $(( $(date +%s) - began )) s after start" \
        '{version: $version, load_note: $note}' >"$OUT/prometheus-setup.json"
}
prometheus_state() { # base_url
    echo "$(metric_value "$1" prometheus_tsdb_blocks_loaded) $(metric_value "$1" prometheus_tsdb_compactions_total)"
}

# ---------------------------------------------------------------- VictoriaMetrics
start_victoriametrics() { # dir port
    # -search.disableCache: no rollup result cache, so repeated runs are computed.
    "$VICTORIA_BIN" -httpListenAddr="127.0.0.1:$2" -storageDataPath="$1" -retentionPeriod=1y \
        -search.disableCache >"$WORK/victoriametrics.log" 2>&1 &
}
ready_path_victoriametrics=/health
load_victoriametrics() { # base_url pid dir
    local began=$(date +%s)
    load_remote_write victoriametrics "$1"
    local loaded=$(date +%s)
    curl -fsS --max-time 120 "$1/internal/force_flush" >/dev/null 2>&1 || log "victoriametrics force_flush failed"
    local months
    months=$(python3 -c "import time,sys; s,e=int(sys.argv[1]),int(sys.argv[2]); print(' '.join(sorted({time.strftime('%Y_%m', time.gmtime(t)) for t in range(s, e + 86400, 86400)})))" \
        "$START_SECONDS" "$(( END_MS / 1000 ))")
    for month in $months; do
        curl -fsS --max-time 600 "$1/internal/force_merge?partition_prefix=$month" >/dev/null 2>&1 \
            || log "victoriametrics force_merge $month failed"
    done
    local state
    state=$(wait_stable "$(date +%s)" 3 1 3 600 victoriametrics_state "$1" "$3")
    jq -n --arg version "victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo unknown)" \
        --arg note "remote_write ($(jq -r .samples_accepted "$OUT/victoriametrics-load.json") samples in $(( loaded - began )) s), force_flush + force_merge ($months), merges settled in $(( $(date +%s) - loaded )) s" \
        '{version: $version, load_note: $note}' >"$OUT/victoriametrics-setup.json"
}
victoriametrics_state() { # base_url dir
    local active
    active=$(curl -fsS --max-time 5 "$1/metrics" 2>/dev/null | awk '/^vm_active_(force_)?merges/ { s += $2 } END { print s + 0 }')
    echo "$active $(du -sb "$2" | cut -f1)"
}

# ---------------------------------------------------------------- per system
run_system() { # name
    local system=$1 dir port pid base ready started=$(date +%s)
    dir="$WORK/data-$system"
    mkdir -p "$dir"
    port=$(free_port)
    base="http://127.0.0.1:$port"
    if declare -F "before_start_$system" >/dev/null; then
        "before_start_$system" "$dir" || return 1
    fi
    log "$system: starting on $base (data $dir)"
    "start_$system" "$dir" "$port"
    pid=$!
    PIDS+=("$pid")
    ready="ready_path_$system"
    if ! wait_ready "$base${!ready}" "$pid"; then
        log "$system: not ready after ${READY_TIMEOUT}s; last log lines:"
        tail -n 20 "$WORK/$system.log" >&2 || true
        stop_process "$pid"
        return 1
    fi
    "load_$system" "$base" "$pid" "$dir"
    log "$system: ready to query after $(( $(date +%s) - started ))s; checking sample counts"
    local metric_args=() metric
    for metric in "${CHECK_METRICS[@]}"; do metric_args+=(--metric "$metric"); done
    python3 "$BENCH_DIR/query_bench.py" check --url "$base" --end-ms "$END_MS" \
        --window-seconds "$WINDOW_SECONDS" "${metric_args[@]}" --out "$OUT/$system-check.json"
    log "$system: timing queries (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    cut -d' ' -f1-3 /proc/loadavg >"$OUT/$system-loadavg-before"
    python3 "$BENCH_DIR/query_bench.py" run --system "$system" --url "$base" --queries "$QUERIES" \
        --end-ms "$END_MS" --scrape-seconds "$INTERVAL_SECONDS" --ranges "$RANGES" --warmup "$WARMUP" \
        --runs "$RUNS" --min-runs "$MIN_RUNS" --budget-seconds "$BUDGET_SECONDS" --out "$OUT/$system-queries.json"
    cut -d' ' -f1-3 /proc/loadavg >"$OUT/$system-loadavg-after"
    stop_process "$pid"
    log "$system: done in $(( $(date +%s) - started ))s"
}

for system in $SYSTEMS; do
    if ! run_system "$system"; then
        log "$system: FAILED (see above); continuing"
    fi
done

TOTAL_SECONDS=$(( $(date +%s) - SCRIPT_STARTED ))
SERIES_TOTAL=$(( TARGETS * (SERIES_PER_TARGET + 14 * HISTOGRAMS) ))
python3 "$BENCH_DIR/query_bench.py" report --results "$OUT" --systems "$SYSTEMS" --results-md "$RESULTS" \
    --total-seconds "$TOTAL_SECONDS" --invocation "${QUERY_BENCH_COMMAND:-bench/query_bench.sh}" \
    --warmup "$WARMUP" --runs "$RUNS" --min-runs "$MIN_RUNS" --budget-seconds "$BUDGET_SECONDS" \
    --env "TARGETS=$TARGETS SERIES_PER_TARGET=$SERIES_PER_TARGET HISTOGRAMS=$HISTOGRAMS DAYS=$DAYS INTERVAL_SECONDS=$INTERVAL_SECONDS SEED=$SEED" \
    --data-note "$TARGETS node_exporter-like targets × ($SERIES_PER_TARGET series + $HISTOGRAMS handlers × 14 series of the classic histogram \`http_request_duration_seconds\`) = $SERIES_TOTAL series, one sample every ${INTERVAL_SECONDS}s for $DAYS d ($ROUNDS rounds) = $(( SERIES_TOTAL * ROUNDS )) samples, seed $SEED"
log "wrote the query section of $RESULTS (query_bench.sh took ${TOTAL_SECONDS}s)"
