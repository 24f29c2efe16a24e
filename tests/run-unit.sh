#!/usr/bin/env bash
# Run cmocka unit test binaries and sum their results.
#
#   tests/run-unit.sh BIN...        run each binary
#   VALGRIND=1 tests/run-unit.sh …  run each under valgrind (definite and
#                                   indirect leaks and memory errors fail)
#
# Ends with the line "N passed, M failed" (cmocka test cases; a binary that
# crashes, times out, fails under valgrind without a cmocka failure, or exits
# without cmocka's summary line counts as one failed test) and exits non-zero
# if anything failed.
# UNIT_TIMEOUT (seconds per binary, default 300; x4 under valgrind).
set -uo pipefail

if [[ $# -eq 0 ]]; then
    echo "run-unit: no unit test binaries given (none in tests/unit/ yet): nothing to run"
    exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
timeout_s="${UNIT_TIMEOUT:-300}"
VG=()
if [[ "${VALGRIND:-0}" == 1 ]]; then
    command -v valgrind >/dev/null || { echo "run-unit: valgrind not installed (tools/setup.sh deps)"; exit 1; }
    VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect
        --show-leak-kinds=definite,indirect --error-exitcode=97 --num-callers=30)
    [[ -f "$ROOT/tests/valgrind.supp" ]] && VG+=(--suppressions="$ROOT/tests/valgrind.supp")
    timeout_s=$((timeout_s * 4))
fi

export CMOCKA_MESSAGE_OUTPUT=STDOUT
total_pass=0 total_fail=0
failed_bins=()
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for bin in "$@"; do
    name="$(basename "$bin")"
    if [[ ! -x "$bin" ]]; then
        echo "run-unit: $bin: not an executable"
        total_fail=$((total_fail + 1)); failed_bins+=("$name"); continue
    fi
    echo "== $name${VG:+ (valgrind)}"
    out="$tmp/$name.out" vglog="$tmp/$name.vg"
    if [[ ${#VG[@]} -gt 0 ]]; then
        timeout -k 10 "$timeout_s" "${VG[@]}" --log-file="$vglog" "$bin" >"$out" 2>&1
    else
        timeout -k 10 "$timeout_s" "$bin" >"$out" 2>&1
    fi
    rc=$?
    cat "$out"
    p="$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')"
    f="$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')"
    why=""
    if [[ $rc -ne 0 && $f -eq 0 ]]; then
        # crashed, timed out, valgrind errors, or not a cmocka binary
        case $rc in
            97) why="valgrind found errors" ;;
            124|137) why="timed out after ${timeout_s}s" ;;
            *) why="exit code $rc" ;;
        esac
    elif ! grep -q '^\[==========\] [0-9][0-9]* test(s) run\.' "$out"; then
        # exit 0 but no cmocka summary: it ran no test, or exited before the end
        why="exit code $rc without cmocka's summary line (no tests run?)"
    fi
    if [[ -n $why ]]; then
        echo "run-unit: $name failed: $why"
        f=1
    fi
    if [[ -f "$vglog" ]] && { [[ $rc -ne 0 ]] || grep -q 'ERROR SUMMARY: [1-9]' "$vglog"; }; then
        cat "$vglog"
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    [[ $f -gt 0 || $rc -ne 0 ]] && failed_bins+=("$name")
done

[[ ${#failed_bins[@]} -gt 0 ]] && echo "run-unit: failed: ${failed_bins[*]}"
echo "$total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 && ${#failed_bins[@]} -eq 0 ]]
