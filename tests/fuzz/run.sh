#!/bin/sh
# run.sh SECONDS [TARGET...] -- build every tests/fuzz/fuzz_*.c (or only the
# named ones, e.g. fuzz_command) as a libFuzzer target (ASan + UBSan) into
# build-fuzz/ and run each for SECONDS; a crash fails. FUZZ_RUNS=N stops a
# target after N executions instead (whichever comes first). Each target's
# line at the end gives its executions and executions per second, from
# libFuzzer's final stats.
#
# Seeds are tests/fuzz/corpus-<target>/: small on purpose (a few messages,
# not whole captures), so executions stay cheap; the corpus in
# build-fuzz/corpus-<target> grows across runs. A target's first lines may
# say "fuzz-needs: agent" or "fuzz-needs: gateway" (it links that code) and
# "fuzz-max-len: N" (the longest input tried, default 4096) and
# "fuzz-flags: ..." (more libFuzzer flags, with the reason in that file).
set -eu
SECONDS_EACH=${1:-30}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/../.."
CC=${FUZZ_CC:-clang}
OUT=build-fuzz
PKGS="rdkafka jansson libconfig libwebsockets libjwt openssl"
PKG_CFLAGS=$(pkg-config --cflags $PKGS 2>/dev/null || true)
PKG_LIBS=$(pkg-config --libs $PKGS 2>/dev/null || true)
CFLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
mkdir -p "$OUT/obj"
# Leaks inside third-party libraries that we cannot fix: tests/fuzz/lsan.supp.
LSAN_OPTIONS="suppressions=$(pwd)/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS

# The code under test is compiled once per change into an archive per part
# (lib, agent, gateway), instrumented for coverage; a target links the
# archives it needs. An object is rebuilt when its source or any header of
# the tree is newer.
newest_header=$(ls -t lib/*.h agent/*.h gateway/*.h | head -1)
archive() { # archive NAME SOURCES...
    name=$1
    shift
    objs=""
    for c in "$@"; do
        o="$OUT/obj/$(echo "$c" | tr / _ | sed 's/\.c$/.o/')"
        if [ ! -e "$o" ] || [ "$c" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
            # shellcheck disable=SC2086
            $CC $CFLAGS -fsanitize=fuzzer-no-link -Ilib -Iagent -Igateway $PKG_CFLAGS -c "$c" -o "$o"
        fi
        objs="$objs $o"
    done
    rm -f "$OUT/lib$name.a"
    # shellcheck disable=SC2086
    ar rcs "$OUT/lib$name.a" $objs
}
echo "== build the code under test"
archive fuzzlib $(ls lib/*.c)
archive fuzzagent $(ls agent/*.c | grep -v '^agent/main\.c$')
archive fuzzgateway $(ls gateway/*.c | grep -v '^gateway/main\.c$')

if [ $# -gt 0 ]; then
    targets=$(for t in "$@"; do echo "tests/fuzz/${t%.c}.c"; done)
else
    targets=$(ls tests/fuzz/fuzz_*.c)
fi

status=0
summary=""
for src in $targets; do
    name=$(basename "$src" .c)
    libs=""
    head -20 "$src" | grep -q 'fuzz-needs: agent' && libs="$libs $OUT/libfuzzagent.a"
    head -20 "$src" | grep -q 'fuzz-needs: gateway' && libs="$libs $OUT/libfuzzgateway.a"
    maxlen=$(head -20 "$src" | sed -n 's/.*fuzz-max-len: *\([0-9]*\).*/\1/p')
    flags=$(head -20 "$src" | sed -n 's/.*fuzz-flags: *//p')
    echo "== build $name"
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer -Ilib -Iagent -Igateway $PKG_CFLAGS "$src" $libs "$OUT/libfuzzlib.a" \
        -o "$OUT/$name" $PKG_LIBS -lev -lpthread -lm

    corpus="$OUT/corpus-$name"
    mkdir -p "$corpus"
    [ -d "tests/fuzz/corpus-${name#fuzz_}" ] && cp -n tests/fuzz/corpus-"${name#fuzz_}"/* "$corpus"/
    echo "== run $name for ${SECONDS_EACH}s${FUZZ_RUNS:+ or $FUZZ_RUNS runs}"
    if ! "$OUT/$name" -max_total_time="$SECONDS_EACH" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} \
            -max_len="${maxlen:-4096}" -print_final_stats=1 -artifact_prefix="$OUT/$name-" $flags "$corpus" \
            > "$OUT/$name.log" 2>&1; then
        echo "FAIL: $name crashed, see $OUT/$name.log and $OUT/$name-crash-*"
        tail -40 "$OUT/$name.log"
        status=1
        summary="$summary$(printf '%-24s CRASHED' "$name")
"
    else
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$name.log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$OUT/$name.log")
        echo "ok: $name: $runs executions, $rate exec/s"
        summary="$summary$(printf '%-24s %12s executions %8s exec/s' "$name" "$runs" "$rate")
"
    fi
done
echo "== executions per target"
printf '%s' "$summary"
exit $status
