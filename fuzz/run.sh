#!/bin/sh
# fuzz/run.sh SECONDS [TARGET...]: runs each libFuzzer target (build/fuzz/fuzz_TARGET,
# all of fuzz/fuzz_*.c by default) for SECONDS on its seed corpus
# (fuzz/corpus/TARGET, read only) and its working corpus (build/fuzz/corpus/TARGET,
# kept between runs), with the dictionary fuzz/json.dict + fuzz/TARGET.dict.
# A crash, a sanitizer report, a broken property, a timeout (10 s) or an
# allocation above 2 GiB stops that target; its input lands in
# build/fuzz/artifacts/.  The other targets still run.  Prints one line per
# target (executions, coverage, features, corpus) and writes the same table to
# build/fuzz/summary.md; exits 1 when any target found something.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
shift
targets="$*"
[ -n "$targets" ] || targets=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')
B=build/fuzz
mkdir -p "$B/logs" "$B/artifacts"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
found=0
{
    echo "| target | seconds | executions | coverage (edges) | features | corpus | result |"
    echo "|---|---|---|---|---|---|---|"
} > "$B/summary.md"
printf '%-16s %8s %12s %8s %8s %8s  %s\n' target seconds executions cov ft corpus result
for t in $targets; do
    bin="$B/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz/run.sh: $bin is missing (make fuzz builds it)" >&2
        exit 2
    fi
    cat fuzz/json.dict > "$B/$t.dict"
    [ -f "fuzz/$t.dict" ] && cat "fuzz/$t.dict" >> "$B/$t.dict"
    mkdir -p "$B/corpus/$t" "$B/tmp/$t"
    log="$B/logs/$t.log"
    TMPDIR="$PWD/$B/tmp/$t" "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
        -dict="$B/$t.dict" -artifact_prefix="$B/artifacts/$t-" "$B/corpus/$t" "fuzz/corpus/$t" > "$log" 2>&1
    rc=$?
    rm -rf "$B/tmp/$t"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    result=ok
    if [ "$rc" -ne 0 ]; then
        result="FOUND (exit $rc, see $log)"
        found=1
    fi
    printf '%-16s %8s %12s %8s %8s %8s  %s\n' "$t" "$secs" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
    echo "| $t | $secs | ${execs:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |" >> "$B/summary.md"
    if [ "$rc" -ne 0 ]; then
        echo "---- $t: the report (end of $log):"
        grep -v '^#[0-9]' "$log" | tail -n 40
        echo "----"
    fi
done
exit $found
