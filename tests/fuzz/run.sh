#!/bin/sh
# run.sh SECONDS -- build every tests/fuzz/fuzz_*.c as a libFuzzer target
# (ASan + UBSan) into build-fuzz/ and run each for SECONDS; a crash fails.
# The corpus starts from the real AMI captures and grows across runs.
set -eu
SECONDS_EACH=${1:-30}
cd "$(dirname "$0")/../.."
CC=${FUZZ_CC:-clang}
OUT=build-fuzz
PKGS="rdkafka jansson libconfig libwebsockets libjwt openssl"
PKG_CFLAGS=$(pkg-config --cflags $PKGS 2>/dev/null || true)
PKG_LIBS=$(pkg-config --libs $PKGS 2>/dev/null || true)
mkdir -p "$OUT"

# Library code is enough for the parser targets; a target that needs the
# agent declares it with "fuzz-needs: agent" in its first lines, one that
# needs the gateway with "fuzz-needs: gateway".
LIB_SRCS=$(ls lib/*.c)
AGENT_SRCS=$(ls agent/*.c 2>/dev/null | grep -v '^agent/main\.c$' || true)
GATEWAY_SRCS=$(ls gateway/*.c 2>/dev/null | grep -v '^gateway/main\.c$' || true)

status=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    srcs="$LIB_SRCS"
    if head -20 "$src" | grep -q 'fuzz-needs: agent'; then
        srcs="$srcs $AGENT_SRCS"
    fi
    if head -20 "$src" | grep -q 'fuzz-needs: gateway'; then
        srcs="$srcs $GATEWAY_SRCS"
    fi
    echo "== build $name"
    # shellcheck disable=SC2086
    $CC -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Ilib -Iagent -Igateway $PKG_CFLAGS "$src" $srcs -o "$OUT/$name" $PKG_LIBS -lev -lpthread -lm

    corpus="$OUT/corpus-$name"
    mkdir -p "$corpus"
    # Seeds: tests/fuzz/corpus-<target> when there is one (e.g. commands),
    # else each AMI capture whole, behind the 3 control bytes the parser
    # targets read.
    if [ -d "tests/fuzz/corpus-${name#fuzz_}" ]; then
        cp -n tests/fuzz/corpus-"${name#fuzz_}"/* "$corpus"/
    else
        for f in tests/fixtures/ami-samples/*.ami; do
            seed="$corpus/seed-$(basename "$f")"
            [ -e "$seed" ] || { printf '\007\377\077'; cat "$f"; } > "$seed"
        done
    fi
    echo "== run $name for ${SECONDS_EACH}s"
    if ! "$OUT/$name" -max_total_time="$SECONDS_EACH" -max_len=65536 \
            -print_final_stats=1 -artifact_prefix="$OUT/$name-" "$corpus" \
            > "$OUT/$name.log" 2>&1; then
        echo "FAIL: $name crashed, see $OUT/$name.log and $OUT/$name-crash-*"
        tail -40 "$OUT/$name.log"
        status=1
    else
        grep -E '^stat::number_of_executed_units|^Done' "$OUT/$name.log" || true
        echo "ok: $name"
    fi
done
exit $status
