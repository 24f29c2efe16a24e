#!/usr/bin/env bash
# make bench: starts a private Kafka broker (unless KAFKA_BOOTSTRAP is set),
# runs tests/bench/bench.py against it, then the standby takeover times
# (bench_takeover.py, ~1 minute), stops the broker. Then the
# multi-site catch-up figure (bench_multisite.py: its own three brokers, MM2
# and Toxiproxy, ~8 minutes; BENCH_MULTISITE=0 skips it). First, amisim's
# own throughput at 1,000 seats (bench_amisim.py, no Kafka, ~1 minute;
# BENCH_AMISIM=0 skips it). After the gateway's figures, a 500-seat site after
# an 8-hour day (bench_day.py: snapshots, restarts, AMI event -> browser with
# 500 operators and 20 supervisors connected; ~12 minutes; BENCH_DAY=0 skips
# it). Then the agent's memory through a broker outage (bench_outage.py: its
# own broker, stopped for 30 s; ~1.5 minutes; BENCH_OUTAGE=0 skips it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ "${BENCH_AMISIM:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_amisim.py"
if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
    python3 "$ROOT/tests/bench/bench.py" "$KAFKA_BOOTSTRAP"
    python3 "$ROOT/tests/bench/bench_takeover.py" "$KAFKA_BOOTSTRAP"
    python3 "$ROOT/tests/bench/bench_gateway.py" "$KAFKA_BOOTSTRAP"
    [[ "${BENCH_DAY:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_day.py" "$KAFKA_BOOTSTRAP"
    [[ "${BENCH_OUTAGE:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_outage.py"
    [[ "${BENCH_MULTISITE:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_multisite.py"
    exit 0
fi
DIR="$(mktemp -d /tmp/callbus-bench-kafka.XXXXXX)"
trap '"$ROOT/tests/kafka/kafka.sh" stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
BOOTSTRAP="$("$ROOT/tests/kafka/kafka.sh" start "$DIR" | tail -n1)"
python3 "$ROOT/tests/bench/bench.py" "$BOOTSTRAP"
python3 "$ROOT/tests/bench/bench_takeover.py" "$BOOTSTRAP"
python3 "$ROOT/tests/bench/bench_gateway.py" "$BOOTSTRAP"
[[ "${BENCH_DAY:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_day.py" "$BOOTSTRAP"
"$ROOT/tests/kafka/kafka.sh" stop "$DIR" >/dev/null 2>&1 || true
[[ "${BENCH_OUTAGE:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_outage.py"
[[ "${BENCH_MULTISITE:-1}" == 0 ]] || python3 "$ROOT/tests/bench/bench_multisite.py"
