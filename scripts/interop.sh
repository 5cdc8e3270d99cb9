#!/usr/bin/env bash
# Interop suite: real Prometheus, node-exporter and the OpenTelemetry Python SDK against the
# sightline binary (tests/interop). Idempotent: installs only what is missing, then runs
# pytest; the exit code is pytest's.
#
#   scripts/interop.sh                 # everything
#   scripts/interop.sh -k otlp -x      # extra arguments go to pytest
#
# Environment: SIGHTLINE_BIN (skip the cargo build and test this binary), PROMETHEUS_BIN,
# NODE_EXPORTER_BIN, INTEROP_VENV (default .venv).
#
# The peers always run as direct child processes of pytest, bound to 127.0.0.1, with their
# own temporary directories; this script never starts a system service.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${INTEROP_VENV:-$ROOT/.venv}"
REQUIREMENTS="$ROOT/tests/interop/requirements.txt"
APT_PACKAGES=(prometheus prometheus-alertmanager prometheus-node-exporter)

step() { printf '\n--- interop: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "interop: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_debian_packages() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        deb_installed "$package" || missing+=("$package")
    done
    # python3 -m venv needs ensurepip, which Debian ships separately.
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        step "debian packages present: ${APT_PACKAGES[*]}"
        return
    fi
    step "installing ${missing[*]}"
    # Packages must not start their services (prometheus would listen on all interfaces):
    # a policy-rc.d that says "no" stops invoke-rc.d and deb-systemd-invoke from doing it.
    local policy=/usr/sbin/policy-rc.d
    local added_policy=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        added_policy=1
    fi
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || status=$?
    if [ "$status" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
    fi
    if [ "$added_policy" -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    return "$status"
}

setup_venv() {
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        step "creating $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.interop-requirements.sha256"
    local want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        step "python packages up to date ($REQUIREMENTS)"
        return
    fi
    step "installing python packages ($REQUIREMENTS)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS"
    echo "$want" > "$stamp"
}

build_sightline() {
    if [ -n "${SIGHTLINE_BIN:-}" ]; then
        step "using SIGHTLINE_BIN=$SIGHTLINE_BIN (no build)"
        return
    fi
    step "cargo build -p sightline-server"
    cargo build -p sightline-server
    local target_dir
    target_dir="$(cargo metadata --format-version 1 --no-deps \
        | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    SIGHTLINE_BIN="$target_dir/debug/sightline"
    export SIGHTLINE_BIN
}

started=$SECONDS
install_debian_packages
setup_venv
build_sightline

step "pytest tests/interop (sightline: $SIGHTLINE_BIN)"
export PYTHONDONTWRITEBYTECODE=1
status=0
"$VENV/bin/python" -m pytest "$ROOT/tests/interop" -v "$@" || status=$?
step "done in $((SECONDS - started))s, pytest exit code $status"
exit "$status"
