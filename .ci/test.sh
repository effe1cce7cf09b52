#!/usr/bin/env bash
# The project's test command: `bash .ci/test.sh`.
#
# Runs `npm ci` in tests/js/, which installs the packages its lock file
# pins (skipped when node_modules already holds exactly that lock file's
# install): the Rust tests need the `ai` package there. Then every test
# target of the workspace (unit tests, the `api` integration-test binary,
# the binaries, and the `bench/` load generator's unit tests) with
# `cargo test --workspace --all-targets`, then the browser side's tests
# with `node --test tests/js/` (the client, the React hooks under real
# React and jsdom, the TypeScript declarations, the vendored React). The browser test drives Debian's headless Chromium through
# chromedriver; both are installed here if missing. The alert-rule tests
# (tests/api/operator_assets.rs) run promtool, from Debian's `prometheus`
# package, also installed here if missing. Before that it raises the
# open-file limit (stream tests hold many sockets) and makes sure the local
# PostgreSQL and Redis answer, starting them only when they are installed
# and silent. The cluster tests (tests/api/cluster) need both: PostgreSQL at
# SSE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432, trust auth),
# Redis at SSE_TEST_REDIS_URL (default redis://127.0.0.1:6379) and
# `redis-server` on the PATH. A service that is installed but will not start
# stops the run here; one that is not installed is only reported, and the
# tests that need it then fail with their own message.
#
# Idempotent: safe to run again and again, on a developer machine or in CI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Wait up to $1 seconds for the command in "${@:2}" to succeed.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
}

raise_open_file_limit() {
    local hard
    hard=$(ulimit -Hn)
    if ulimit -n "$hard" 2>/dev/null; then
        log "open-file limit: $(ulimit -n)"
    else
        warn "could not raise the open-file limit to $hard (stays at $(ulimit -n))"
    fi
}

postgres_answers() {
    pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || pg_isready -q 2>/dev/null
}

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null || ! command -v pg_isready >/dev/null \
        || [[ ! -d /etc/postgresql ]] || [[ -z "$(ls -A /etc/postgresql)" ]]; then
        warn "PostgreSQL is not installed: the cluster tests will fail"
        return 0
    fi
    if postgres_answers; then
        log "PostgreSQL: answering"
        return 0
    fi
    # The newest installed major version, should there be several (the
    # entries are plain version numbers, so `ls` is safe here).
    local version
    # shellcheck disable=SC2012
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "PostgreSQL $version: not answering, starting it"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    if wait_for 30 postgres_answers; then
        log "PostgreSQL: answering"
    else
        fail "PostgreSQL $version did not start (see /var/log/postgresql/)"
    fi
}

redis_answers() {
    if command -v redis-cli >/dev/null; then
        [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == "PONG" ]]
    else
        # No client installed: speak the protocol over bash's /dev/tcp.
        local reply
        {
            exec 3<>/dev/tcp/127.0.0.1/6379 \
                && printf 'PING\r\n' >&3 \
                && read -r -t 2 reply <&3 \
                && exec 3>&-
        } 2>/dev/null || return 1
        [[ "$reply" == +PONG* ]]
    fi
}

ensure_redis() {
    if ! command -v redis-server >/dev/null; then
        warn "Redis is not installed: the cluster tests will fail"
        return 0
    fi
    if redis_answers; then
        log "Redis: answering"
        return 0
    fi
    log "Redis: not answering, starting it"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    if wait_for 15 redis_answers; then
        log "Redis: answering"
    else
        fail "Redis did not start (see /var/log/redis/ci.log)"
    fi
}

ensure_chromium() {
    if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
        log "Chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
        return 0
    fi
    command -v apt-get >/dev/null || fail "chromium and chromium-driver are missing and apt-get is not available"
    log "installing chromium and chromium-driver (Debian packages)"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
    [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || fail "chromium did not install"
}

ensure_promtool() {
    if command -v promtool >/dev/null; then
        log "promtool: $(promtool --version 2>&1 | head -n 1)"
        return 0
    fi
    command -v apt-get >/dev/null || fail "promtool (Debian package prometheus) is missing and apt-get is not available"
    log "installing prometheus (Debian package, for promtool)"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    command -v promtool >/dev/null || fail "promtool did not install"
}

ensure_node() {
    command -v node >/dev/null && command -v npm >/dev/null && return 0
    command -v apt-get >/dev/null || fail "node or npm is missing and apt-get is not available"
    log "installing nodejs and npm (Debian packages)"
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
}

# The npm packages of tests/js/ (React, jsdom, TypeScript, esbuild, ai), exactly
# as its lock file pins them. `npm ci` starts from an empty node_modules, so
# a copy of the lock file left beside the install says when it is current.
install_js_packages() {
    local lock=tests/js/package-lock.json
    local stamp=tests/js/node_modules/.ci-package-lock.json
    if [[ -f "$stamp" ]] && cmp -s "$lock" "$stamp"; then
        log "npm packages: installed as tests/js/package-lock.json pins them"
        return 0
    fi
    log "npm ci in tests/js/"
    # No install scripts: none of these packages needs one (esbuild finds
    # its platform binary, an optional dependency, without its own).
    (cd tests/js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp "$lock" "$stamp"
}

raise_open_file_limit
ensure_postgres
ensure_redis
ensure_chromium
ensure_promtool
ensure_node

# Before the Rust tests: tests/api/ui_message_stream/ai_sdk.rs drives the
# `ai` package from tests/js/node_modules.
install_js_packages

log "cargo test --workspace --all-targets"
cargo test --workspace --all-targets

log "node --test tests/js/"
node --test tests/js/
