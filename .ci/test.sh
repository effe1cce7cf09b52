#!/usr/bin/env bash
# The project's test command: `bash .ci/test.sh`.
#
# First it sets the machine up, installing and starting what is missing, so
# that a fresh Debian (bookworm or newer, with or without systemd, as root or
# as a user with sudo) runs every test; on a machine that has everything it
# installs and starts nothing, and only says what it found:
#
# - the open-file limit, raised to the hard limit (stream tests hold many
#   sockets);
# - PostgreSQL at SSE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432,
#   trust auth), for the cluster tests, which log in to its `postgres`
#   database and create and drop a database per test. Missing: Debian's
#   `postgresql` is installed (its cluster `main` is created on port 5432
#   when the package does not). In a cluster this run created, and only
#   there, user `postgres` may log in from 127.0.0.1 and ::1 without a
#   password (`trust` lines at the top of its pg_hba.conf); an existing
#   cluster's settings are never touched, a login that fails there is
#   reported. A cluster that is silent is started (pg_ctlcluster, no
#   systemd needed);
# - Redis at SSE_TEST_REDIS_URL (default redis://127.0.0.1:6379), and
#   `redis-server` on the PATH (or SSE_TEST_REDIS_SERVER) for the private
#   servers the cluster tests start and kill. Missing: Debian's
#   `redis-server` and `redis-tools` are installed. Silent: a redis-server
#   is started on 127.0.0.1:6379 without persistence;
# - Debian's headless Chromium and chromedriver (the browser test), promtool
#   from Debian's `prometheus` (the alert-rule tests in
#   tests/api/operator_assets.rs), nginx (the documented proxy configuration,
#   tests/api/proxies.rs), node and npm;
# - the npm packages tests/js/package-lock.json pins (`npm ci`, skipped when
#   node_modules already holds exactly that install): the Rust tests need
#   the `ai` package there.
#
# SSE_TEST_POSTGRES or SSE_TEST_REDIS_URL naming anything but this machine's
# loopback on the default port (5432, 6379) means that you run that service:
# nothing is installed or started for it. Installs use apt-get (one
# `apt-get update` per run) and need root or sudo. Anything that cannot be
# installed or will not start stops the run here, saying what to look at.
#
# Then every test target of the workspace (unit tests, the `api`
# integration-test binary, the binaries, and the `bench/` load generator's
# unit tests) with `cargo test --workspace --all-targets`, then the browser
# side's tests with `node --test tests/js/` (the client, the React hooks
# under real React and jsdom, the TypeScript declarations, the vendored
# React).
#
# Idempotent: safe to run again and again, on a developer machine or in CI.
# `source .ci/test.sh` only defines the functions (ensure_postgres, ...).
set -euo pipefail

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

# Runs "$@" as root: directly when this is root, else through sudo; with
# neither, as this user (who may own what the command touches).
as_root() {
    if [[ $(id -u) -eq 0 ]] || ! command -v sudo >/dev/null; then
        "$@"
    else
        sudo "$@"
    fi
}

APT_UPDATED=false

# apt_install WHAT [OPTION...] PACKAGE...: installs Debian packages for WHAT
# (what the log calls it), running `apt-get update` first, once per run.
apt_install() {
    local what=$1
    shift
    command -v apt-get >/dev/null \
        || fail "$what is missing and apt-get is not available (not Debian?): install it yourself"
    [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null \
        || fail "$what is missing: installing it needs root or sudo"
    if ! $APT_UPDATED; then
        log "apt-get update"
        as_root apt-get update -qq || fail "apt-get update failed"
        APT_UPDATED=true
    fi
    local packages=() arg
    for arg in "$@"; do
        [[ $arg == -* ]] || packages+=("$arg")
    done
    log "$what: installing Debian packages ${packages[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
        || fail "$what: apt-get install ${packages[*]} failed"
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

# The host[:port] of a postgres:// or redis:// URL, without user and password.
url_endpoint() {
    local rest=${1#*://}
    rest=${rest%%[/?]*}
    printf '%s\n' "${rest##*@}"
}

# is_local_url URL PORT: whether URL names this machine's loopback (or the
# default host) on PORT (or on no port, which means PORT).
is_local_url() {
    local endpoint host port
    endpoint=$(url_endpoint "$1")
    if [[ $endpoint == \[* ]]; then
        host=${endpoint%%]*}]
    else
        host=${endpoint%%:*}
    fi
    port=${endpoint#"$host"}
    port=${port#:}
    case $host in
        127.0.0.1 | localhost | '[::1]' | '') ;;
        *) return 1 ;;
    esac
    [[ -z $port || $port == "$2" ]]
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

POSTGRES_DEFAULT_URL=postgres://postgres@127.0.0.1:5432

postgres_answers() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || pg_isready -q -p 5432 2>/dev/null
    else
        # No client installed: is anything listening?
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

# "VERSION NAME" of the Debian cluster on port 5432, if there is one.
postgres_cluster() {
    command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1, $2; exit }'
}

# The newest PostgreSQL server version installed from Debian's packages.
postgres_server_version() {
    local servers=(/usr/lib/postgresql/*/bin/postgres)
    [[ -x ${servers[0]} ]] || return 0
    printf '%s\n' "${servers[@]}" | sed 's|^/usr/lib/postgresql/||; s|/bin/postgres$||' \
        | sort -V | tail -n 1
}

# postgres_trust_loopback VERSION NAME: lets user postgres log in from
# 127.0.0.1 and ::1 without a password, as the tests do; Debian's own lines
# ask for one. For a cluster this run created, never for another.
postgres_trust_loopback() {
    local version=$1 name=$2 hba content
    hba=$(pg_conftool -s "$version" "$name" show hba_file) \
        || fail "PostgreSQL $version/$name: cannot find its pg_hba.conf (pg_conftool)"
    log "PostgreSQL $version/$name: trust for user postgres from 127.0.0.1 and ::1 (top of $hba)"
    content=$(
        printf '%s\n' \
            '# Added by .ci/test.sh (sse-broker tests): user postgres over loopback, no password.' \
            'host    all    postgres    127.0.0.1/32    trust' \
            'host    all    postgres    ::1/128         trust' \
            ''
        as_root cat "$hba"
    ) || fail "PostgreSQL $version/$name: cannot read $hba"
    printf '%s\n' "$content" | as_root tee "$hba" >/dev/null \
        || fail "PostgreSQL $version/$name: cannot write $hba"
}

# postgres_check_login URL CREATED: logs in to URL's `postgres` database as
# the tests do and checks that the user may create databases. A failure
# stops the run for a cluster this run created (CREATED=true); for another
# it is only reported, since its settings are its owner's.
postgres_check_login() {
    local url=$1/postgres created=$2 endpoint reply problem
    endpoint=$(url_endpoint "$1")
    if ! command -v psql >/dev/null; then
        log "PostgreSQL: no psql here to try the tests' login; the cluster tests will tell"
        return 0
    fi
    if reply=$(PGCONNECT_TIMEOUT=5 psql "$url" -XAtqw \
        -c 'SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user'); then
        if [[ $reply == t ]]; then
            log "PostgreSQL: the tests' login works ($endpoint/postgres, may create databases)"
            return 0
        fi
        problem="the tests' user may not create databases"
    else
        problem="the tests' login fails (psql's message above)"
    fi
    if $created; then
        fail "PostgreSQL at $endpoint: $problem"
    fi
    warn "PostgreSQL at $endpoint: $problem; the cluster tests will fail." \
        "This script leaves an existing cluster's settings alone: let user postgres in" \
        "from 127.0.0.1 (trust in pg_hba.conf) or point SSE_TEST_POSTGRES elsewhere"
}

ensure_postgres() {
    local url=${SSE_TEST_POSTGRES:-$POSTGRES_DEFAULT_URL}
    url=${url%/}
    if ! is_local_url "$url" 5432; then
        log "PostgreSQL: SSE_TEST_POSTGRES names $(url_endpoint "$url"), yours to run: nothing installed or started"
        return 0
    fi
    local cluster created=false
    cluster=$(postgres_cluster)
    if [[ -z $cluster ]] && postgres_answers; then
        # Not a cluster of Debian's packages (a container's port, a build of
        # one's own): used as it is.
        log "PostgreSQL: answering on port 5432 (not a Debian cluster)"
        postgres_check_login "$url" false
        return 0
    fi
    if [[ -z $cluster ]]; then
        if ! command -v pg_createcluster >/dev/null || [[ -z $(postgres_server_version) ]]; then
            log "PostgreSQL: not installed"
            apt_install PostgreSQL postgresql
            # Whatever cluster there is now, the package created it in this run.
            created=true
            cluster=$(postgres_cluster)
        elif [[ -n $(pg_lsclusters -h 2>/dev/null) ]]; then
            fail "PostgreSQL: no cluster on port 5432 (pg_lsclusters lists others, left alone):" \
                "create one, or point SSE_TEST_POSTGRES at yours"
        fi
    fi
    if [[ -z $cluster ]]; then
        local server_version
        server_version=$(postgres_server_version)
        [[ -n $server_version ]] || fail "PostgreSQL: no server under /usr/lib/postgresql after the install"
        log "PostgreSQL $server_version: no cluster, creating $server_version/main on port 5432"
        as_root pg_createcluster --port 5432 "$server_version" main >/dev/null \
            || fail "PostgreSQL $server_version: pg_createcluster failed"
        created=true
        cluster="$server_version main"
    fi
    local version=${cluster% *} name=${cluster#* }
    log "PostgreSQL $version/$name: found on port 5432"
    if $created; then
        postgres_trust_loopback "$version" "$name"
    fi
    if postgres_answers; then
        log "PostgreSQL $version/$name: answering"
        if $created; then
            # Started by the package already: read the new pg_hba.conf.
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload \
                || fail "PostgreSQL $version/$name: reload failed"
        fi
    else
        log "PostgreSQL $version/$name: not answering, starting it"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start || true
        wait_for 30 postgres_answers \
            || fail "PostgreSQL $version/$name did not start (see /var/log/postgresql/postgresql-$version-$name.log)"
        log "PostgreSQL $version/$name: started, answering"
    fi
    postgres_check_login "$url" "$created"
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

REDIS_DEFAULT_URL=redis://127.0.0.1:6379

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

# The cluster tests also start (and kill) Redis servers of their own.
check_redis_server_binary() {
    local server=${SSE_TEST_REDIS_SERVER:-redis-server}
    command -v "$server" >/dev/null \
        || warn "Redis: $server is not on the PATH, and the cluster tests start private servers with it:" \
            "install Debian's redis-server or set SSE_TEST_REDIS_SERVER"
}

ensure_redis() {
    local url=${SSE_TEST_REDIS_URL:-$REDIS_DEFAULT_URL}
    if ! is_local_url "$url" 6379; then
        log "Redis: SSE_TEST_REDIS_URL names $(url_endpoint "$url"), yours to run: nothing installed or started"
        check_redis_server_binary
        return 0
    fi
    if ! command -v redis-server >/dev/null; then
        if redis_answers; then
            # A container's port, say: used as it is.
            log "Redis: answering on 127.0.0.1:6379 (redis-server not installed here)"
            check_redis_server_binary
            return 0
        fi
        log "Redis: not installed"
        apt_install Redis redis-server redis-tools
        command -v redis-server >/dev/null || fail "Redis: redis-server is not on the PATH after the install"
    fi
    log "Redis: redis-server $(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
    if redis_answers; then
        log "Redis: answering on 127.0.0.1:6379"
    else
        log "Redis: not answering, starting it on 127.0.0.1:6379"
        as_root mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
        wait_for 15 redis_answers || fail "Redis did not start (see /var/log/redis/ci.log)"
        log "Redis: started, answering"
    fi
    check_redis_server_binary
}

# ---------------------------------------------------------------------------
# Chromium, promtool, curl, node
# ---------------------------------------------------------------------------

ensure_chromium() {
    if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
        apt_install "Chromium and chromedriver" chromium chromium-driver
        [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || fail "chromium did not install"
    fi
    log "Chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
}

ensure_promtool() {
    if ! command -v promtool >/dev/null; then
        apt_install "promtool (Debian package prometheus)" --no-install-recommends prometheus
        command -v promtool >/dev/null || fail "promtool did not install"
    fi
    log "promtool: $(promtool --version 2>&1 | head -n 1)"
}

# tests/api/proxies.rs runs docs/proxies.md's nginx configuration.
ensure_nginx() {
    if [[ ! -x /usr/sbin/nginx ]] && ! command -v nginx >/dev/null; then
        apt_install "nginx" --no-install-recommends nginx
        [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || fail "nginx did not install"
    fi
    log "nginx: $( (/usr/sbin/nginx -v || nginx -v) 2>&1 | head -n 1)"
}

# tests/api/readme_walkthrough.rs runs the README's curl commands as written.
ensure_curl() {
    if ! command -v curl >/dev/null; then
        apt_install "curl" curl
        command -v curl >/dev/null || fail "curl did not install"
    fi
    log "curl: $(curl --version | head -n 1)"
}

ensure_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install "node and npm" nodejs npm
    fi
    log "node $(node --version), npm $(npm --version)"
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

main() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."

    raise_open_file_limit
    ensure_postgres
    ensure_redis
    ensure_chromium
    ensure_promtool
    ensure_nginx
    ensure_curl
    ensure_node

    # Before the Rust tests: tests/api/ui_message_stream/ai_sdk.rs drives the
    # `ai` package from tests/js/node_modules.
    install_js_packages

    log "cargo test --workspace --all-targets"
    cargo test --workspace --all-targets

    log "node --test tests/js/"
    node --test tests/js/
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
