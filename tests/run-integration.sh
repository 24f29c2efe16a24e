#!/usr/bin/env bash
# Integration tests: one Kafka broker for the whole session, then pytest.
#
#   tests/run-integration.sh [PYTEST ARGS...]
#
# Starts a broker with tests/kafka/kafka.sh in a temp dir (stopped on exit,
# also on Ctrl-C) unless KAFKA_BOOTSTRAP is set, exports KAFKA_BOOTSTRAP and
# CALLBUS_BUILD (default: build), and runs python3 -m pytest -q tests/integration
# (or only the test files or directories among the arguments).
# Sanitizer reports of every process go to CALLBUS_SAN_LOG_DIR (a temp dir;
# conftest.py fails the test that was running when one appears).
# `-m sanitizer` selects the tests `make integration-san` runs.
# KEEP_KAFKA_DIR=1 keeps the broker dir (logs) after the run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CALLBUS_BUILD="${CALLBUS_BUILD:-build}"
PYTHON="${PYTHON:-python3}"

# the librdkafka check program used by test_kafka_broker.py
mkdir -p "$CALLBUS_BUILD/tests"
if [[ ! -x "$CALLBUS_BUILD/tests/rdkafka_check" || tests/kafka/rdkafka_check.c -nt "$CALLBUS_BUILD/tests/rdkafka_check" ]]; then
    echo "run-integration: building $CALLBUS_BUILD/tests/rdkafka_check"
    # shellcheck disable=SC2046
    ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -g tests/kafka/rdkafka_check.c \
        -o "$CALLBUS_BUILD/tests/rdkafka_check" $(pkg-config --cflags --libs rdkafka)
fi

KDIR=""
CALLBUS_SAN_LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/callbus-san.XXXXXX")"
export CALLBUS_SAN_LOG_DIR
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    rm -rf "$CALLBUS_SAN_LOG_DIR"
    if [[ -n "$KDIR" ]]; then
        env -u KAFKA_BOOTSTRAP tests/kafka/kafka.sh stop "$KDIR" || true
        if [[ $rc -ne 0 && -f "$KDIR/server.log" ]]; then
            echo "run-integration: last warnings/errors of the broker log ($KDIR/server.log):"
            grep -E '^\[[^]]*\] (WARN|ERROR) ' "$KDIR/server.log" | tail -n 20 || true
        fi
        if [[ "${KEEP_KAFKA_DIR:-0}" == 1 ]]; then
            echo "run-integration: broker dir kept: $KDIR"
        else
            rm -rf "$KDIR"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
    echo "run-integration: using the Kafka cluster at KAFKA_BOOTSTRAP=$KAFKA_BOOTSTRAP"
else
    KDIR="$(mktemp -d "${TMPDIR:-/tmp}/callbus-kafka.XXXXXX")"
    echo "run-integration: starting the session Kafka broker in $KDIR"
    t0=$SECONDS
    KAFKA_BOOTSTRAP="$(tests/kafka/kafka.sh start "$KDIR")"
    export KAFKA_BOOTSTRAP
    echo "run-integration: broker at $KAFKA_BOOTSTRAP ($((SECONDS - t0))s)"
fi

# The whole suite, unless the arguments name test files or directories.
targets=(tests/integration)
for arg in "$@"; do
    [[ -e "${arg%%::*}" ]] && targets=()
done
set +e
"$PYTHON" -m pytest -q --strict-markers --durations=12 "${targets[@]}" "$@"
rc=$?
set -e
exit "$rc"
