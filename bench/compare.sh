#!/usr/bin/env bash
# Sightline vs Prometheus vs VictoriaMetrics: the same remote_write load against each,
# one after the other, on fresh data dirs and loopback ports; then bench/RESULTS.md.
#
#   bench/compare.sh                       # defaults: ~75k series, 15M samples each
#   TARGETS=200 ROUNDS=100 bench/compare.sh
#   SYSTEMS="prometheus victoriametrics" SKIP_BUILD=1 bench/compare.sh
#
# Every knob is an environment variable; see bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")

# Load (the same for every system).
TARGETS=${TARGETS:-150}
SERIES_PER_TARGET=${SERIES_PER_TARGET:-500}
ROUNDS=${ROUNDS:-200}
INTERVAL_SECONDS=${INTERVAL_SECONDS:-15}
CHURN=${CHURN:-0}
CONCURRENCY=${CONCURRENCY:-8}
BATCH_SIZE=${BATCH_SIZE:-2000}
SEED=${SEED:-1}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
# 1: the generator encodes every request before the clock starts (--pregenerate), so
# during the load it only sends and takes almost no CPU from the system under test.
PREGENERATE=${PREGENERATE:-1}
# Which systems, in order.
SYSTEMS=${SYSTEMS:-"sightline prometheus victoriametrics"}
# Binaries.
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SIGHTLINE_BIN=${SIGHTLINE_BIN:-$TARGET_DIR/release/sightline}
LOADGEN_BIN=${LOADGEN_BIN:-$TARGET_DIR/release/sightline-loadgen}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
VICTORIA_BIN=${VICTORIA_BIN:-/usr/bin/victoria-metrics}
# Sightline config (limits raised so the bench measures the engine, not the limiter).
SIGHTLINE_CONFIG=${SIGHTLINE_CONFIG:-}
# WAL fsync policy for the generated config (always | batch | none); empty: Sightline's default.
SIGHTLINE_WAL_FSYNC=${SIGHTLINE_WAL_FSYNC:-}
# Output.
RESULTS=${RESULTS:-$BENCH_DIR/RESULTS.md}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
READY_TIMEOUT=${READY_TIMEOUT:-120}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sightline-bench.XXXXXX")
OUT="$WORK/results"
mkdir -p "$OUT"
PIDS=()
SCRIPT_STARTED=$(date +%s)
BUILD_SECONDS=0

log() { printf '%s compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# cleanup (trapped on EXIT), free_port, wait_ready, stop_process.
source "$BENCH_DIR/lib.sh"
trap cleanup EXIT
trap 'exit 130' INT TERM

proc_kib() { # pid field -> bytes
    awk -v f="$2:" '$1 == f { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# User + system CPU time of a process so far, in seconds (from /proc/PID/stat).
proc_cpu_seconds() { # pid
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

du_apparent() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
du_allocated() { du -sB1 "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }

# ---------------------------------------------------------------- build
if [ "$SKIP_BUILD" != 1 ]; then
    packages=(-p sightline-loadgen)
    case " $SYSTEMS " in *" sightline "*) packages+=(-p sightline-server) ;; esac
    log "cargo build --release ${packages[*]}"
    build_started=$(date +%s)
    (cd "$ROOT" && cargo build --release "${packages[@]}")
    BUILD_SECONDS=$(( $(date +%s) - build_started ))
    log "build took ${BUILD_SECONDS}s"
fi
[ -x "$LOADGEN_BIN" ] || { log "no loadgen binary at $LOADGEN_BIN"; exit 1; }

# The same simulated time range for every system, in the past for all of them.
START_SECONDS=$(( $(date +%s) - ROUNDS * INTERVAL_SECONDS - 60 ))
RANGE_SECONDS=$(( (ROUNDS + 2) * INTERVAL_SECONDS ))
LAST_SECONDS=$(( START_SECONDS + (ROUNDS + 1) * INTERVAL_SECONDS ))
LOADGEN_ARGS=(--targets "$TARGETS" --series-per-target "$SERIES_PER_TARGET" --rounds "$ROUNDS"
    --interval "${INTERVAL_SECONDS}s" --churn "$CHURN" --concurrency "$CONCURRENCY"
    --batch-size "$BATCH_SIZE" --seed "$SEED" --start "$START_SECONDS" --threads "$LOADGEN_THREADS"
    --progress 15s)
[ "$PREGENERATE" != 1 ] || LOADGEN_ARGS+=(--pregenerate)

# Query helper: one figure from an instant PromQL query at the end of the data
# (by default the first result's value), or "n/a" when the query is not supported.
instant_query() { # base_url query [jq_filter]
    local filter=${3:-'.data.result[0].value[1]'} answer
    answer=$(curl -fsS --max-time 60 -G "$1/api/v1/query" --data-urlencode "query=$2" \
        --data-urlencode "time=$LAST_SECONDS" 2>/dev/null | jq -r "$filter // \"n/a\"" 2>/dev/null || true)
    echo "${answer:-n/a}"
}

# ---------------------------------------------------------------- per system
start_sightline() { # dir port
    local config=$SIGHTLINE_CONFIG
    if [ -z "$config" ]; then
        config="$WORK/sightline.yaml"
        {
            echo "limits:"
            echo "  ingestion_rate_samples_per_second: 1000000000"
            echo "  ingestion_burst_samples: 2000000000"
            if [ -n "$SIGHTLINE_WAL_FSYNC" ]; then
                printf 'storage:\n  wal:\n    fsync: %s\n' "$SIGHTLINE_WAL_FSYNC"
            fi
        } >"$config"
    fi
    cp "$config" "$OUT/sightline-config.yaml"
    # --enable-admin-api: the flush endpoint is off by default (no auth), like Prometheus'.
    "$SIGHTLINE_BIN" serve --enable-admin-api --data-dir "$1" --listen "127.0.0.1:$2" \
        --otlp-grpc-listen "127.0.0.1:$(free_port)" --otlp-http-listen "127.0.0.1:$(free_port)" \
        --config "$config" >"$WORK/sightline.log" 2>&1 &
}
ready_path_sightline=/-/ready
persist_sightline() { # base_url pid dir
    curl -fsS --max-time 600 -X POST "$1/api/sightline/v1/admin/flush" >"$WORK/sightline-flush.out" 2>&1 \
        || log "sightline flush failed: $(head -c 300 "$WORK/sightline-flush.out")"
    echo "admin flush (POST /api/sightline/v1/admin/flush); whole data dir measured (blocks + WAL)"
}
version_sightline() { "$SIGHTLINE_BIN" --version 2>/dev/null | head -1 || echo "sightline (git $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null))"; }

start_prometheus() { # dir port
    printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$WORK/prometheus.yml"
    "$PROMETHEUS_BIN" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$1" \
        --web.listen-address="127.0.0.1:$2" --web.enable-remote-write-receiver \
        --web.enable-admin-api --storage.tsdb.retention.time=30d >"$WORK/prometheus.log" 2>&1 &
}
ready_path_prometheus=/-/ready
persist_prometheus() { # base_url pid dir
    # Prometheus cuts blocks only once the head spans 3h; a TSDB snapshot writes the
    # head as one compacted block, which is what its data would occupy once persisted.
    local name
    name=$(curl -fsS --max-time 600 -X POST "$1/api/v1/admin/tsdb/snapshot" | jq -r '.data.name' 2>/dev/null || true)
    if [ -n "$name" ] && [ "$name" != null ]; then
        echo "$3/snapshots/$name" >"$WORK/prometheus-snapshot"
    fi
    echo "no on-demand block cut: data dir measured as is (WAL + head chunks); block size from an admin TSDB snapshot"
}
version_prometheus() { "$PROMETHEUS_BIN" --version 2>&1 | head -1; }

start_victoriametrics() { # dir port
    "$VICTORIA_BIN" -httpListenAddr="127.0.0.1:$2" -storageDataPath="$1" -retentionPeriod=1y \
        >"$WORK/victoriametrics.log" 2>&1 &
}
ready_path_victoriametrics=/health
persist_victoriametrics() { # base_url pid dir
    curl -fsS --max-time 120 "$1/internal/force_flush" >/dev/null 2>&1 || log "victoriametrics force_flush failed"
    local months
    months=$(python3 -c "import time,sys; s,e=int(sys.argv[1]),int(sys.argv[2]); print(' '.join(sorted({time.strftime('%Y_%m', time.gmtime(t)) for t in (s, e)})))" "$START_SECONDS" "$LAST_SECONDS")
    for month in $months; do
        curl -fsS --max-time 600 "$1/internal/force_merge?partition_prefix=$month" >/dev/null 2>&1 \
            || log "victoriametrics force_merge $month failed"
    done
    # force_merge runs in the background: wait until no merge is active and the dir is stable.
    local previous=-1 current active
    for _ in $(seq 1 300); do
        sleep 1
        active=$(curl -fsS --max-time 5 "$1/metrics" 2>/dev/null \
            | awk '/^vm_active_(force_)?merges/ { s += $2 } END { print s + 0 }')
        current=$(du_apparent "$3")
        [ "$active" = 0 ] && [ "$current" = "$previous" ] && break
        previous=$current
    done
    echo "force_flush + force_merge (partitions $months), waited for merges to finish"
}
version_victoriametrics() {
    # The Debian build reports an empty version; ask the package manager instead.
    local version
    version=$(dpkg-query -W -f='${Version}' "$(dpkg -S "$VICTORIA_BIN" 2>/dev/null | cut -d: -f1)" 2>/dev/null || true)
    echo "victoria-metrics ${version:-unknown} ($VICTORIA_BIN)"
}

run_system() { # name
    local system=$1 dir port pid base ready load rss hwm note started=$(date +%s)
    dir="$WORK/data-$system"
    mkdir -p "$dir"
    port=$(free_port)
    base="http://127.0.0.1:$port"
    log "$system: starting on $base (data $dir)"
    case $system in
        sightline) [ -x "$SIGHTLINE_BIN" ] || { log "sightline: no binary at $SIGHTLINE_BIN"; return 1; } ;;
    esac
    # Started in this shell (not a subshell) so the server is our child and $! is its pid.
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
    local version
    version=$("version_$system" 2>/dev/null || echo unknown)

    log "$system: load: ${LOADGEN_ARGS[*]}"
    local cpu_before cpu_after server_cpu
    cpu_before=$(proc_cpu_seconds "$pid")
    load=$("$LOADGEN_BIN" --url "$base/api/v1/write" "${LOADGEN_ARGS[@]}")
    cpu_after=$(proc_cpu_seconds "$pid")
    server_cpu=$(awk -v a="$cpu_after" -v b="$cpu_before" 'BEGIN { printf "%.2f", a - b }')
    echo "$load" >"$OUT/$system-load.json"
    rss=$(proc_kib "$pid" VmRSS)
    hwm=$(proc_kib "$pid" VmHWM)
    log "$system: $(echo "$load" | jq -c '{samples_accepted, samples_per_second_accepted, wall_seconds, errors}')"
    local self_metrics=""
    if [ "$system" = sightline ]; then
        self_metrics=$(curl -fsS --max-time 10 "$base/metrics" 2>/dev/null \
            | grep -E '^sightline_(active_series|samples_received_total|samples_rejected_total)' | tr '\n' ';' || true)
    fi

    local persist_started=$(date +%s)
    note=$("persist_$system" "$base" "$pid" "$dir")
    local persist_seconds=$(( $(date +%s) - persist_started ))
    local up_count up_samples
    up_count=$(instant_query "$base" 'count(up)')
    [ "$up_count" != n/a ] || up_count=$(instant_query "$base" 'up' '.data.result | length')
    up_samples=$(instant_query "$base" "sum(count_over_time(up[${RANGE_SECONDS}s]))")
    [ "$up_samples" != n/a ] \
        || up_samples=$(instant_query "$base" "up[${RANGE_SECONDS}s]" '[.data.result[].values | length] | add')
    local rss_after_persist
    rss_after_persist=$(proc_kib "$pid" VmRSS)

    local apparent allocated block_apparent=0 block_allocated=0 layout
    if [ "$system" = prometheus ]; then
        apparent=$(du_apparent --exclude=snapshots "$dir")
        allocated=$(du_allocated --exclude=snapshots "$dir")
        if [ -s "$WORK/prometheus-snapshot" ]; then
            block_apparent=$(du_apparent "$(cat "$WORK/prometheus-snapshot")")
            block_allocated=$(du_allocated "$(cat "$WORK/prometheus-snapshot")")
        fi
    else
        apparent=$(du_apparent "$dir")
        allocated=$(du_allocated "$dir")
    fi
    layout=$(cd "$dir" && du -b --max-depth=3 . 2>/dev/null | sort -k2 | awk '{ printf "%s=%s; ", $2, $1 }')
    stop_process "$pid"

    jq -n --arg system "$system" --arg version "$version" --arg note "$note" \
        --argjson load "$load" --argjson rss "$rss" --argjson hwm "$hwm" \
        --argjson rss_after_persist "$rss_after_persist" --argjson server_cpu "$server_cpu" \
        --argjson apparent "$apparent" --argjson allocated "$allocated" \
        --argjson block_apparent "$block_apparent" --argjson block_allocated "$block_allocated" \
        --arg layout "$layout" --arg up_count "$up_count" --arg up_samples "$up_samples" \
        --arg self_metrics "$self_metrics" --argjson persist_seconds "$persist_seconds" \
        --argjson seconds "$(( $(date +%s) - started ))" \
        '{system: $system, version: $version, persist_note: $note, load: $load,
          server_cpu_seconds: $server_cpu, rss_bytes: $rss, hwm_bytes: $hwm, rss_after_persist_bytes: $rss_after_persist,
          disk_apparent_bytes: $apparent, disk_allocated_bytes: $allocated,
          block_apparent_bytes: $block_apparent, block_allocated_bytes: $block_allocated,
          layout: $layout, check_up_count: $up_count, check_up_samples: $up_samples,
          self_metrics: $self_metrics, persist_seconds: $persist_seconds, seconds: $seconds}' \
        >"$OUT/$system.json"
    log "$system: done in $(( $(date +%s) - started ))s: rss=${rss}B disk=${apparent}B"
}

for system in $SYSTEMS; do
    if ! run_system "$system"; then
        jq -n --arg system "$system" '{system: $system, failed: true}' >"$OUT/$system.json"
        log "$system: FAILED (see above); continuing"
    fi
done

TOTAL_SECONDS=$(( $(date +%s) - SCRIPT_STARTED ))
# Keep query_bench.sh's section (between its markers) of the RESULTS being replaced.
QUERY_SECTION=$(sed -n '/^<!-- query-bench:start/,/^<!-- query-bench:end -->/p' "$RESULTS" 2>/dev/null || true)
python3 "$BENCH_DIR/report.py" --results "$OUT" --systems "$SYSTEMS" --total-seconds "$TOTAL_SECONDS" --build-seconds "$BUILD_SECONDS" \
    --expected-up-samples "$(( TARGETS * ROUNDS ))" --command "${COMPARE_COMMAND:-bench/compare.sh}" \
    --env "TARGETS=$TARGETS SERIES_PER_TARGET=$SERIES_PER_TARGET ROUNDS=$ROUNDS INTERVAL_SECONDS=$INTERVAL_SECONDS CHURN=$CHURN CONCURRENCY=$CONCURRENCY BATCH_SIZE=$BATCH_SIZE SEED=$SEED LOADGEN_THREADS=$LOADGEN_THREADS PREGENERATE=$PREGENERATE" \
    >"$RESULTS"
[ -z "$QUERY_SECTION" ] || printf '\n%s\n' "$QUERY_SECTION" >>"$RESULTS"
log "wrote $RESULTS (compare.sh took ${TOTAL_SECONDS}s)"
