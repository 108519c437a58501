#!/bin/sh
# tools/bench_ab.sh OLD NEW [ROUNDS [CONFIG [CASES]]]: is NEW slower than OLD?
#
# OLD and NEW are two bench_train binaries (build/bench_train of two checkouts). Each case
# (default: lora roae rosa generate prefill, and lora in BF16 and with --recompute) runs
# alternately with OLD and NEW, ROUNDS times each (default 3), on CONFIG (default
# bench/configs/smollm2-135m.json, random weights), so that a change of the machine's load
# touches both sides alike. Prints, per case, the median seconds per step of each side and
# NEW/OLD (above 1: NEW is slower), and the spread of the rounds, which is the noise a ratio
# must beat to mean anything. Threads: BENCH_THREADS (default 2); steps per run: BENCH_STEPS
# (default 3, after one warm-up).
set -e
OLD=${1:?usage: tools/bench_ab.sh OLD NEW [ROUNDS [CONFIG [CASES]]]}
NEW=${2:?usage: tools/bench_ab.sh OLD NEW [ROUNDS [CONFIG [CASES]]]}
ROUNDS=${3:-3}
CONFIG=${4:-bench/configs/smollm2-135m.json}
CASES=${5:-"lora roae rosa generate prefill lora:bf16 lora:recompute"}
STEPS=${BENCH_STEPS:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=${BENCH_THREADS:-2}
[ -n "$OMP_WAIT_POLICY$GOMP_SPINCOUNT" ] || export GOMP_SPINCOUNT=10000
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for c in $CASES; do
    name=${c%%:*}
    mode=fp32
    extra=""
    case "$c" in
    *:bf16) mode=bf16 ;;
    *:recompute) extra=recompute ;;
    esac
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        for side in old new; do
            bin=$OLD
            [ "$side" = new ] && bin=$NEW
            # generate and prefill take no dtype argument
            if [ "$name" = generate ] || [ "$name" = prefill ]; then
                line=$("$bin" "$CONFIG" "$name" "$STEPS")
            else
                line=$("$bin" "$CONFIG" "$name" "$STEPS" "$mode" $extra)
            fi
            printf '%s\t%s\t%s\n' "$c" "$side" "$line" >> "$out"
            printf '.' >&2
        done
        r=$((r + 1))
    done
done
echo >&2
"$PYTHON" - "$out" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case, side, js = line.rstrip("\n").split("\t", 2)
    rows.setdefault(case, {"old": [], "new": []})[side].append(json.loads(js)["seconds_per_step"])
print("| case | old s/step | new s/step | new/old | spread of the rounds (max/min - 1) |")
print("|---|---|---|---|---|")
for case, r in rows.items():
    o, n = statistics.median(r["old"]), statistics.median(r["new"])
    spread = max(max(v) / min(v) - 1 for v in (r["old"], r["new"]))
    print(f"| {case} | {o:.4f} | {n:.4f} | {n / o:.3f} | {100 * spread:.1f}% |")
EOF
