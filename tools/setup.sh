#!/usr/bin/env bash
# callbus setup.
#
#   tools/setup.sh deps   install what is missing: Debian packages (build
#                         tools, libraries, valgrind, Java, Maven, ...) and the
#                         Python test packages of tests/requirements.txt,
#                         podman, runc, mmdebstrap and podman-compose (the
#                         compose/ deployment run for real, see compose/README.md),
#                         systemd (systemd-analyze verifies the units), and
#                         Toxiproxy (the WAN of the multi-site test) built
#                         with Go into $CALLBUS_CACHE/bin.
#                         A fast no-op when everything is present.
#
# Environment: PYTHON (default python3) is the interpreter the tests run with;
# CALLBUS_CACHE (default ~/.cache/callbus) holds the Kafka jars and tools.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

APT_PKGS=(
    build-essential pkg-config
    librdkafka-dev libwebsockets-dev libjansson-dev libconfig-dev libjwt-dev
    libssl-dev uthash-dev libcmocka-dev
    libev-dev libwebsockets-evlib-ev
    clang libclang-rt-14-dev valgrind
    maven python3 python3-pip jq iproute2 procps openssl strace
    kcat
    tzdata faketime
    chromium
    podman runc mmdebstrap
    systemd
)
# The browser test needs Node.js >= 20 with npm; a machine without any gets Debian's.
command -v node >/dev/null || APT_PKGS+=(nodejs npm)
JAVA_PKG=openjdk-17-jre-headless
# python import name -> pip requirement (see tests/requirements.txt)
PY_MODULES=(confluent_kafka jsonschema referencing pytest websocket yaml podman_compose)

say() { echo "setup: $*"; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { say "not root and no sudo: cannot install"; exit 1; }
    SUDO=(sudo)
fi

java_ok() {
    command -v java >/dev/null || return 1
    local v
    v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
    [[ -n "$v" && "$v" -ge 17 ]]
}

# The compose validator (tests/compose, compose-go) needs Go >= 1.24:
# /usr/local/go first, else Debian's golang-go (too old on Debian 12: said
# below). Its modules are fetched here so test_compose.py builds offline.
compose_go_deps() {
    local go="" g minor
    for g in /usr/local/go/bin/go "$(command -v go 2>/dev/null)"; do
        [[ -n "$g" && -x "$g" ]] && { go="$g"; break; }
    done
    if [[ -z "$go" ]]; then
        say "no go: installing Debian's golang-go"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go
        go="$(command -v go)"
    fi
    minor="$("$go" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
    if [[ -n "$minor" && "$minor" -lt 24 ]]; then
        say "$go is $("$go" env GOVERSION): tests/compose needs Go >= 1.24 (install it in /usr/local/go)"
        return 0
    fi
    (cd "$ROOT/tests/compose" && GOPROXY=off GOFLAGS=-mod=readonly "$go" mod download >/dev/null 2>&1) && return 0
    say "fetching the Go modules of tests/compose"
    (cd "$ROOT/tests/compose" && GOFLAGS=-mod=readonly "$go" mod download)
}

apt_deps() {
    local missing=() p
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    java_ok || missing+=("$JAVA_PKG")
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    command -v apt-get >/dev/null || { say "missing ${missing[*]} and no apt-get: install them by hand"; exit 1; }
    say "installing Debian packages: ${missing[*]}"
    say "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

py_missing() {
    "$PYTHON" - "${PY_MODULES[@]}" <<'PY'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
PY
}

py_deps() {
    command -v "$PYTHON" >/dev/null || { say "$PYTHON not found"; exit 1; }
    local missing
    missing="$(py_missing)"
    [[ -z "$missing" ]] && return 0
    say "Python modules missing for $PYTHON ($(command -v "$PYTHON")): $missing"
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        say "pip missing: trying ensurepip"
        "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 || true
        "$PYTHON" -m pip --version >/dev/null 2>&1 || { say "no pip for $PYTHON (install python3-pip)"; exit 1; }
    fi
    local args=(install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt")
    [[ $(id -u) -eq 0 ]] && args+=(--root-user-action=ignore)
    # PEP 668: Debian's own python3 refuses pip installs outside a venv.
    if "$PYTHON" - <<'PY'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
PY
    then
        say "$PYTHON is externally managed (PEP 668): using --break-system-packages"
        args+=(--break-system-packages)
        # as non-root, install for the user rather than into /usr
        [[ $(id -u) -ne 0 ]] && args+=(--user)
    fi
    say "$PYTHON -m pip ${args[*]}"
    "$PYTHON" -m pip "${args[@]}"
    missing="$(py_missing)"
    [[ -z "$missing" ]] || { say "still missing after pip: $missing"; exit 1; }
}

# Toxiproxy: the newest v2 builds with Go >= 1.23 (/usr/local/go, or any go on
# PATH); Debian's golang-go (1.19) is the fallback and gets the last release
# that still builds with it. Both have the toxics the multi-site test uses.
TOXIPROXY_NEW=v2.12.0
TOXIPROXY_OLD=v2.5.0
TOXIPROXY_BIN="${CALLBUS_CACHE:-$HOME/.cache/callbus}/bin/toxiproxy-server"

find_go() {
    local g
    for g in "$(command -v go 2>/dev/null)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
        [[ -n "$g" && -x "$g" ]] && { echo "$g"; return 0; }
    done
    return 1
}

toxiproxy_dep() {
    local have=""
    [[ -x "$TOXIPROXY_BIN" && -f "$TOXIPROXY_BIN.version" ]] && have="$(cat "$TOXIPROXY_BIN.version")"
    [[ "$have" == "$TOXIPROXY_NEW" || "$have" == "$TOXIPROXY_OLD" ]] && return 0
    local go ver minor tmp
    if ! go="$(find_go)"; then
        say "no go: installing Debian's golang-go"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go
        go="$(find_go)" || { say "still no go"; exit 1; }
    fi
    minor="$("$go" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
    ver=$TOXIPROXY_NEW
    [[ -n "$minor" && "$minor" -lt 23 ]] && ver=$TOXIPROXY_OLD
    tmp="$(mktemp -d)"
    say "building toxiproxy-server $ver with $go into $TOXIPROXY_BIN"
    GOBIN="$tmp" GOFLAGS=-buildvcs=false "$go" install "github.com/Shopify/toxiproxy/v2/cmd/server@$ver"
    mkdir -p "$(dirname "$TOXIPROXY_BIN")"
    mv "$tmp/server" "$TOXIPROXY_BIN"
    echo "$ver" >"$TOXIPROXY_BIN.version"
    rm -rf "$tmp"
}

case "${1:-}" in
    deps)
        apt_deps
        compose_go_deps
        py_deps
        toxiproxy_dep
        say "dependencies present"
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
